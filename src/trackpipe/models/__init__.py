"""Encoder models: one backbone, pluggable attention backends and heads, a name -> builder registry."""
