"""guards services."""
