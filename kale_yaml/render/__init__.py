"""Stage 5: the pipeline as KFP DSL code (template) and as compiled YAML; atomic writes."""
