"""Report: the report's text and figures, and the history across commits."""
