"""Turning per-hit model outputs (or geometry, for the classical baseline) into disjoint tracks."""
