"""Command line and pytest plugin: options declared once, `python -m bench`, peers, pins."""
