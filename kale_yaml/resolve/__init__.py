"""Stage 2: the sidecar resolved against the notebook: selectors, ownership, parameters, cluster and volume
settings checked, defaults merged."""
