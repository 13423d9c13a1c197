"""positions views."""
