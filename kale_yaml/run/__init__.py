"""Stage 6: running the pipeline: here (kfp.local) or on a KFP server."""
