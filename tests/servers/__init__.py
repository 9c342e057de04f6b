"""Stand-in HTTP servers for the platform adapters: real `ThreadingHTTPServer`s on
127.0.0.1 that implement the documented request/response shapes, validate what clients send,
and record what was posted so tests can assert it."""
