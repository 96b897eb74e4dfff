"""Turning per-hit model outputs into tracks (disjoint: every hit in exactly one track)."""
