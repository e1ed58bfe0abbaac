"""The process: gunicorn settings and its worker class."""
