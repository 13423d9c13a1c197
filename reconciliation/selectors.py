"""reconciliation selectors."""
