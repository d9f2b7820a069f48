"""kale-yaml: a notebook plus pipeline.kale.yaml becomes a Kubeflow Pipelines v2 pipeline."""

__version__ = "0.1.0"
