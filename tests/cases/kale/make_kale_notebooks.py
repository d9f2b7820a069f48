"""Write the Kale-style test notebooks (cell tags and `kubeflow_notebook` metadata as Kale's JupyterLab
extension writes them) that tests/test_import_kale.py imports.

Run from anywhere:  python tests/cases/kale/make_kale_notebooks.py
Fixed cell ids and no outputs: running it again rewrites identical files.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def cell(kind: str, source: str, *tags: str) -> Any:
    text = textwrap.dedent(source).strip("\n")
    made = new_markdown_cell(text) if kind == "md" else new_code_cell(text)
    if tags:
        made.metadata["tags"] = list(tags)
    return made


def write(name: str, cells: list[Any], kale: dict[str, Any] | None) -> None:
    for number, made in enumerate(cells, start=1):
        made.id = f"k{number:02d}"
    nb = new_notebook(cells=cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    if kale is not None:
        nb.metadata["kubeflow_notebook"] = kale
    nbformat.validate(nb)
    path = HERE / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        nbformat.write(nb, f)
    print(f"wrote {path.relative_to(HERE)}")


# A linear pipeline: imports (and an untagged cell joining them), functions, parameters, a skipped cell
# whose untagged follower joins the step before it, limits, an image, a label and an annotation, metrics.
FARES = [
    cell("md", "# Fares"),
    cell("code", "import numpy as np\nimport pandas as pd", "imports"),
    cell("code", "from collections import Counter"),
    cell("code", "def clean(frame):\n    return frame.dropna()", "functions"),
    cell("code", "n_rows = 50\nseed = 3", "pipeline-parameters"),
    cell("md", "## Load"),
    cell(
        "code",
        """
        rng = np.random.default_rng(seed)
        data = pd.DataFrame({"age": rng.integers(1, 80, n_rows), "fare": rng.random(n_rows) * 100})
        """,
        "step:loaddata",
    ),
    cell("code", "data.head()", "skip"),
    cell("code", "data = clean(data)"),
    cell("md", "## Features"),
    cell("code", 'features = data.assign(ratio=data["fare"] / data["age"])', "step:features", "prev:loaddata",
         "limit:memory:1Gi"),  # fmt: skip
    cell(
        "code",
        """
        threshold = features["ratio"].median()
        labels = (features["ratio"] > threshold).astype(int)
        """,
        "step:train",
        "prev:features",
        "image:python:3.11",
        "limit:cpu:2",
        "limit:nvidia.com/gpu:1",
    ),
    cell(
        "code",
        "accuracy = float(labels.mean())\ncounts = Counter(labels.tolist())",
        "step:evaluate",
        "prev:train",
        "label:team:ml",
        "annotation:owner:data-science",
    ),
    cell("code", "print(accuracy)", "pipeline-metrics"),
]
FARES_KALE = {
    "pipeline_name": "fares",
    "pipeline_description": "Fare ratios, the Kale way",
    "experiment": {"id": "new", "name": "fares"},
    "experiment_name": "fares",
    "docker_image": "python:3.11-slim",
    "volumes": [],
    "katib_run": False,
    "autosnapshot": False,
    "snapshot_volumes": False,
    "steps_defaults": [],
}

# Two branches joined again: the legacy block: tag, an untagged cell joining a step, two prev: tags on one
# cell, secret: and cache: tags, a papermill tag Kale does not know, an untagged cell before any tag,
# volumes (an existing claim with a snapshot, a new claim) and steps_defaults.
BRANCHES = [
    cell("code", 'print("exploring")'),
    cell("code", "import re", "imports"),
    cell("code", "min_length = 3", "pipeline-parameters", "parameters"),
    cell("code", 'text = "the quick brown fox jumps over the lazy dog and the end"', "block:read_text"),
    cell("code", 'words = [w for w in re.findall(r"[a-z]+", text) if len(w) >= min_length]'),
    cell(
        "code",
        "counts = {w: words.count(w) for w in set(words)}",
        "step:count",
        "prev:read_text",
        "secret:api-token:token:API_TOKEN",
        "cache:false",
    ),
    cell("code", "longest = max(words, key=len)", "step:longest", "prev:read_text"),
    cell(
        "code",
        'vocabulary = len(counts)\nsummary = f"{vocabulary} words, the longest is {longest}"',
        "step:report",
        "prev:count",
        "prev:longest",
    ),
    cell("code", "vocabulary", "pipeline-metrics"),
]
BRANCHES_KALE = {
    "pipeline_name": "word-stats",
    "experiment": {"id": "x1", "name": "words"},
    "docker_image": "python:3.11-slim",
    "steps_defaults": ["label:project:words", "limit:memory:512Mi"],
    "volumes": [
        {
            "name": "data-pvc",
            "mount_point": "/data",
            "type": "pvc",
            "size": 1,
            "size_type": "Gi",
            "snapshot": True,
            "snapshot_name": "words-data",
            "annotations": [],
        },
        {
            "name": "scratch",
            "mount_point": "/scratch",
            "type": "new_pvc",
            "size": 5,
            "size_type": "Gi",
            "snapshot": False,
            "annotations": [{"key": "rok/origin", "value": "x"}],
        },
    ],
    "storage_class_name": "standard",
    "autosnapshot": False,
    "katib_run": False,
}

# A data flow Kale's prev: tags do not cover: `total` reads `areas` but names no prev. Kale would fail at
# run time; kale-yaml adds the edge and import-kale says so. No kubeflow_notebook metadata at all.
IMPLICIT = [
    cell("code", "import math", "imports"),
    cell("code", "def area(r):\n    return math.pi * r * r", "functions"),
    cell("code", "radii = [1, 2, 3]", "step:radii"),
    cell("code", "areas = [area(r) for r in radii]", "step:areas", "prev:radii"),
    cell("code", "total = sum(areas)", "step:total"),
    cell("code", "mean_area = total / len(areas)"),
    cell("code", "total\nprint(mean_area)", "pipeline-metrics"),
]


def main() -> None:
    write("fares", FARES, FARES_KALE)
    write("branches", BRANCHES, BRANCHES_KALE)
    write("implicit", IMPLICIT, None)


if __name__ == "__main__":
    main()
