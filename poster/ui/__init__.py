"""`poster ui`: a local web app over the same core as the CLI.

Server-rendered pages (Starlette + Jinja2) with a little plain JavaScript of our own
(`static/app.js`: drag and drop, upload progress, polling a task, zoom to 100 %). No CDN,
no Node build step, and no vendored framework: the pages work as plain forms without
JavaScript, and the few enhancements are ~200 lines that a reviewer can read in one sitting,
which also lets the Content-Security-Policy forbid inline scripts altogether.

Layout: `app.py` (security, the one route table, rendering), `views.py` (thin views that call
`poster.actions`), `tasks.py` (long work in a worker thread, with progress), `server.py`
(launch: secret, port, browser, the daemon in-process), `templates/` (pages and
`_partial.html` pieces), `static/`.
"""
