"""Layer 8: applications on top of generation and serving: tools for agents (more to come)."""
