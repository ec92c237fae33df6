"""Face verification with liveness."""
