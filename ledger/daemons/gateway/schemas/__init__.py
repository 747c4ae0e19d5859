"""Request and response models for OpenAPI."""
