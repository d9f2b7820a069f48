"""Stage 1: read the sidecar (with positions) and the notebook, and check the sidecar's schema."""
