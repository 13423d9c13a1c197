"""reconciliation services."""
