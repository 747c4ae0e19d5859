"""The live feature: the hub, its SSE events, the live routes and preferences."""
