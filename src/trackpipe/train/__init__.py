"""One training loop for every model family (see `loop.train`)."""
