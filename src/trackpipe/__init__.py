"""trackpipe: transformer-based charged-particle track reconstruction, end to end."""

__version__ = "0.1.0"
