"""reconciliation serializers."""
