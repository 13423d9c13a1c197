"""positions selectors."""
