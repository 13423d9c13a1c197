"""guards selectors."""
