"""guards serializers."""
