"""validate / build as library calls. Each reads top to bottom as the stages of DESIGN.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kale_yaml import schema
from kale_yaml.analysis import analyse
from kale_yaml.cluster import ClusterError
from kale_yaml.document import Document, load_document
from kale_yaml.errors import Diagnostic, DocumentError, KaleYamlError, NotebookError
from kale_yaml.model import Config
from kale_yaml.notebook import load_notebook
from kale_yaml.plan import Pipeline, plan
from kale_yaml.render import cluster_problems, function_name, render
from kale_yaml.resolve import resolve

SIDECAR_NAME = "pipeline.kale.yaml"
DEFAULT_OUTPUT_DIR = ".kale"


@dataclass(frozen=True)
class Project:
    """A validated sidecar: everything needed to render, run or describe the pipeline."""

    sidecar: Path
    pipeline: Pipeline

    @property
    def config(self) -> Config:
        return self.pipeline.config

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return self.pipeline.warnings


@dataclass(frozen=True)
class BuildResult:
    project: Project
    python_path: Path
    yaml_path: Path
    changed: bool  # whether the files on disk differed from this build (or did not exist)


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working folder when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def find_sidecar(path: Path | str | None) -> Path:
    """`PATH` of the commands: a sidecar file, or a folder holding `pipeline.kale.yaml`."""
    candidate = Path(path) if path is not None else Path.cwd()
    if candidate.is_dir():
        candidate = candidate / SIDECAR_NAME
    if not candidate.is_file():
        raise DocumentError.single(Diagnostic(file=display_path(candidate), message="no such sidecar file"))
    return candidate


def validate(path: Path | str | None = None) -> Project:
    """Schema, notebook and data-flow checks. Raises `KaleYamlError`; never imports kfp."""
    sidecar = find_sidecar(path)
    document = load_document(sidecar, display_path(sidecar))
    schema.check(document)
    notebook_path = _notebook_path(document)
    at_notebook_key = lambda message: document.diagnostic(("notebook",), message)  # noqa: E731
    notebook = load_notebook(notebook_path, display_path(notebook_path), at_notebook_key)
    config = resolve(document, notebook)
    analysis = analyse(
        notebook.display_name,
        prelude=[notebook.cell(n) for n in config.prelude],
        parameters=[p.name for p in config.parameters],
        steps=[
            (step.name, [notebook.cell(n) for n in step.cells], step.inputs, step.outputs)
            for step in config.steps
        ],
        locate_key=lambda step, key, index, message: document.diagnostic(
            ("steps", config.step(step).index, key, index), message
        ),
    )
    pipeline = plan(config, analysis, analysis.prelude)
    problems = cluster_problems(pipeline)
    if problems:
        raise ClusterError(problems)
    return Project(sidecar=sidecar, pipeline=pipeline)


def generate(project: Project, *, local: bool = False) -> str:
    """The text of `NAME.pipeline.py`."""
    # Names as the sidecar writes them, never relative to the working folder: same input, same bytes.
    return render(
        project.pipeline,
        sidecar_name=project.sidecar.name,
        notebook_name=str(project.config.document.data["notebook"]),
        local=local,
    )


def compile_pipeline(project: Project, source: str) -> str:
    from kale_yaml.compile import compile_source

    return compile_source(source, function_name(project.pipeline), project.config.document.display_name)


def output_paths(project: Project, out_dir: Path | str | None) -> tuple[Path, Path]:
    folder = Path(out_dir) if out_dir is not None else project.sidecar.parent / DEFAULT_OUTPUT_DIR
    name = project.config.name
    return folder / f"{name}.pipeline.py", folder / f"{name}.pipeline.yaml"


def build(
    path: Path | str | None = None, out_dir: Path | str | None = None, *, check: bool = False
) -> BuildResult:
    """Validate, render and compile; write both files atomically (or, with `check`, only compare)."""
    from kale_yaml.compile import write_atomically

    project = validate(path)
    source = generate(project)
    compiled = compile_pipeline(project, source)
    python_path, yaml_path = output_paths(project, out_dir)
    wanted = {python_path: source, yaml_path: compiled}
    changed = any(not p.is_file() or p.read_bytes() != text.encode("utf-8") for p, text in wanted.items())
    if not check and changed:
        write_atomically(wanted, project.config.document.display_name)
    return BuildResult(project=project, python_path=python_path, yaml_path=yaml_path, changed=changed)


def _notebook_path(document: Document) -> Path:
    """The notebook beside the sidecar. A relative path may not climb out of the sidecar's folder (a review
    should not have to chase `../../`); an absolute path says explicitly where the notebook is."""
    written = Path(str(document.data["notebook"]))
    if written.is_absolute():
        return written
    folder = document.path.parent.resolve()
    path = (folder / written).resolve()
    if not path.is_relative_to(folder):
        raise NotebookError.single(
            document.diagnostic(
                ("notebook",),
                f"'{written}' leaves the sidecar's folder; keep the notebook beside or below the sidecar,"
                " or write an absolute path",
            )
        )
    return path


__all__ = [
    "BuildResult",
    "KaleYamlError",
    "Project",
    "build",
    "display_path",
    "find_sidecar",
    "generate",
    "validate",
]
