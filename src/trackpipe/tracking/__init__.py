"""Turning per-hit model outputs (or geometry, for the classical baseline) into disjoint tracks:
every hit in exactly one track."""
