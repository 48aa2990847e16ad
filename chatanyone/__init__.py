"""The ``chatanyone`` command line."""
