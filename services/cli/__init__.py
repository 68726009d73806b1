"""The ``aiots`` command line."""
