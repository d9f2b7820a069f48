"""Stage 4: the pipeline: DAG, each step's inputs and outputs, topological order; graph output."""
