"""positions admin."""
