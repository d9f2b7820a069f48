"""kale-yaml: a notebook plus pipeline.kale.yaml becomes a Kubeflow Pipelines v2 pipeline."""

from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "kale-yaml"


def __getattr__(name: str) -> str:
    # `__version__` is looked up when asked for, not at import: reading metadata costs start-up time.
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version() -> str:
    """pyproject.toml holds the version, the one place it is written: an installed kale-yaml reads it from
    its distribution's metadata, a checkout that was never installed from pyproject.toml itself."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return "unknown"
    found = project.get("version") if project.get("name") == DISTRIBUTION else None
    return found if isinstance(found, str) else "unknown"
