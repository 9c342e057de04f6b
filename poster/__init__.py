"""poster: post illustrations with per-platform protection and a traceable hidden ID."""

__version__ = "0.1.0"
