"""guards views."""
