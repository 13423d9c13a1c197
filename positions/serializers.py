"""positions serializers."""
