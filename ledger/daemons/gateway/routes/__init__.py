"""The HTTP routes, one module per resource, and what they share (responses, bodies)."""
