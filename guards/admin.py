"""guards admin."""
