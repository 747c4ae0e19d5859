"""Route modules, one per resource (DESIGN §5)."""
