"""reconciliation views."""
