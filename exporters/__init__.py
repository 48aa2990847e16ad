"""File exporters: one module per format, each with ``write(clip, path, ...)``."""
