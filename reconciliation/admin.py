"""reconciliation admin."""
