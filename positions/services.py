"""positions services."""
