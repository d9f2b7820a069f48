"""validate / build as library calls. Each reads top to bottom as the stages of DESIGN.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from kale_yaml.analysis.steps import analyse
from kale_yaml.errors import Diagnostic, KaleYamlError
from kale_yaml.load import schema
from kale_yaml.load.document import load_document
from kale_yaml.load.notebook import load_notebook, notebook_path
from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR, display_path, find_sidecar
from kale_yaml.plan.dag import plan
from kale_yaml.plan.project import Project
from kale_yaml.render.generate import cluster_problems, function_name, project_source
from kale_yaml.resolve.cluster import ClusterError
from kale_yaml.resolve.config import resolve

if TYPE_CHECKING:
    from kale_yaml.render.compile import Kept

@dataclass(frozen=True)
class BuildResult:
    project: Project
    python_path: Path
    yaml_path: Path
    changed: bool  # whether the files on disk differed from this build (or did not exist)


def validate(path: Path | str | None = None) -> Project:
    """Schema, notebook and data-flow checks. Raises `KaleYamlError`; never imports kfp."""
    sidecar = find_sidecar(path)
    document = load_document(sidecar, display_path(sidecar))
    schema.check(document)
    notebook_file = notebook_path(document)
    at_notebook_key = lambda message: document.diagnostic(("notebook",), message)  # noqa: E731
    notebook = load_notebook(notebook_file, display_path(notebook_file), at_notebook_key)
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
    return project_source(project, local=local)


def compile_pipeline(project: Project, source: str) -> str:
    from kale_yaml.render.compile import compile_source

    return compile_source(source, function_name(project.pipeline), project.config.document.display_name)


def output_paths(project: Project, out_dir: Path | str | None) -> tuple[Path, Path]:
    folder = Path(out_dir) if out_dir is not None else project.sidecar.parent / DEFAULT_OUTPUT_DIR
    name = project.config.name
    return folder / f"{name}.pipeline.py", folder / f"{name}.pipeline.yaml"


def build(
    path: Path | str | None = None, out_dir: Path | str | None = None, *, check: bool = False
) -> BuildResult:
    """Validate, render and compile; write both files atomically (or, with `check`, only compare)."""
    from kale_yaml.render.compile import refuse_kept, write_atomically

    project = validate(path)
    python_path, yaml_path = output_paths(project, out_dir)
    kept = kept_inputs(project, out_dir)
    refuse_kept((python_path, yaml_path), kept)  # before compiling: --check too, and without waiting for kfp
    source = generate(project)
    compiled = compile_pipeline(project, source)
    wanted = {python_path: source, yaml_path: compiled}
    changed = any(_differs(p, text) for p, text in wanted.items())
    if not check and changed:
        write_atomically(wanted, kept, display_path)
    return BuildResult(project=project, python_path=python_path, yaml_path=yaml_path, changed=changed)


def _differs(path: Path, text: str) -> bool:
    try:
        return not path.is_file() or path.read_bytes() != text.encode("utf-8")
    except OSError:  # unreadable: the writer says what is wrong with it
        return True


def kept_inputs(project: Project, out_dir: Path | str | None) -> list[Kept]:
    """The notebook and the sidecar, which no output may replace. The error is where the user can change
    it: at `-o` when an output folder was given, else at the notebook's key (or the sidecar's file)."""
    from kale_yaml.render.compile import Kept

    def refusal(kind: str, at_input: Callable[[str], Diagnostic]) -> Callable[[Path], Diagnostic]:
        def refuse(output: Path) -> Diagnostic:
            if out_dir is not None:
                return Diagnostic(
                    file=f"-o {out_dir}",
                    message=f"writing {output.name} there would replace the {kind}; kale-yaml never writes"
                    " the notebook or the sidecar: choose another output folder",
                )
            return at_input(
                f"build writes its output {display_path(output)}, which is the {kind}; kale-yaml never"
                f" writes the {kind}: move or rename it, or build with -o DIR"
            )

        return refuse

    def at_sidecar(message: str) -> Diagnostic:
        return Diagnostic(file=display_path(project.sidecar), message=message)

    at_notebook_key = partial(project.config.document.diagnostic, ("notebook",))
    return [
        Kept(project.config.notebook.path, refusal("notebook", at_notebook_key)),
        Kept(project.sidecar, refusal("sidecar", at_sidecar)),
    ]


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
