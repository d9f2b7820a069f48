"""validate / build as library calls. Each reads top to bottom as the stages of DESIGN.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.steps import analyse
from kale_yaml.errors import ClusterError, Diagnostic, KaleYamlError
from kale_yaml.load.inputs import load_inputs
from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR, display_path, find_sidecar
from kale_yaml.plan.dag import plan
from kale_yaml.plan.packages import environments
from kale_yaml.plan.project import Project
from kale_yaml.resolve.cluster import cluster_problems
from kale_yaml.resolve.config import resolve
from kale_yaml.resolve.volumes import volume_problems

if TYPE_CHECKING:
    from kale_yaml.render.compile import Kept
    from kale_yaml.render.view import PipelineView


@dataclass(frozen=True)
class BuildResult:
    project: Project
    python_path: Path
    yaml_path: Path
    changed: bool  # whether the files on disk differed from this build (or did not exist)
    view: PipelineView  # what was rendered: `run` renders its local variant from the same view


def validate(path: Path | str | None = None) -> Project:
    """Schema, notebook, data-flow, cluster and volume checks. Raises `KaleYamlError`; imports nothing of
    rendering (not jinja2, not kfp)."""
    inputs = load_inputs(find_sidecar(path))
    config = resolve(inputs.document, inputs.notebook)
    notebook = config.notebook
    analysis = analyse(
        notebook.display_name,
        prelude=[notebook.cell(n) for n in config.prelude],
        parameters=[p.name for p in config.parameters],
        steps=[
            (step.name, [notebook.cell(n) for n in step.cells], step.inputs, step.outputs)
            for step in config.steps
        ],
        locate_key=lambda step, key, index, kind, message: (
            config.step(step).where.child(key, index).at(kind, message)
        ),
    )
    pipeline = plan(config, analysis, analysis.prelude)
    # Checked after the plan, as when rendering found them: a sidecar the earlier stages reject reports
    # only their problems.
    problems = [*volume_problems(config), *cluster_problems(config)]
    if problems:
        raise ClusterError(problems)
    # What each step installs and carries: reads the installed distributions and the notebook's folder.
    pipeline = dataclasses.replace(pipeline, environments=environments(pipeline, inputs.sidecar))
    return Project(sidecar=inputs.sidecar, pipeline=pipeline)


def generate(project: Project, *, local: bool = False) -> str:
    """The text of `NAME.pipeline.py`."""
    from kale_yaml.render.generate import project_source

    return project_source(project, local=local)


def output_paths(project: Project, out_dir: Path | str | None) -> tuple[Path, Path]:
    folder = Path(out_dir) if out_dir is not None else project.sidecar.parent / DEFAULT_OUTPUT_DIR
    name = project.config.name
    return folder / f"{name}.pipeline.py", folder / f"{name}.pipeline.yaml"


def build(
    path: Path | str | None = None,
    out_dir: Path | str | None = None,
    *,
    check: bool = False,
    project: Project | None = None,
) -> BuildResult:
    """Validate (unless `project` is the validated sidecar already), render and compile; write both files
    atomically (or, with `check`, only compare)."""
    from kale_yaml.render.build_stamp import compiled_on_disk, record
    from kale_yaml.render.compile import compile_source, refuse_kept, write_atomically
    from kale_yaml.render.generate import render
    from kale_yaml.render.limits import refuse_oversized_steps
    from kale_yaml.render.view import pipeline_view

    project = project or validate(path)
    python_path, yaml_path = output_paths(project, out_dir)
    kept = kept_inputs(project, out_dir)
    refuse_kept((python_path, yaml_path), kept)  # before compiling: --check too, and without waiting for kfp
    view = pipeline_view(project)
    source = render(view)
    # Stamps are kept only for builds into `.kale/`: `-o DIR` writes nothing beside the sidecar.
    cache = project.sidecar.parent / DEFAULT_OUTPUT_DIR / "cache" if out_dir is None else None
    compiled = compiled_on_disk(cache, source, yaml_path) if cache else None  # kfp made exactly this
    if compiled is None:
        compiled = compile_source(source, view.function, project.config.where.file)
        refuse_oversized_steps(view, compiled)  # a step no container could start: before anything is written
    wanted = {python_path: source, yaml_path: compiled}
    changed = any(_differs(p, text) for p, text in wanted.items())
    if not check and changed:
        write_atomically(wanted, kept, display_path)
    if cache and not check:
        record(cache, source, compiled)
    return BuildResult(project, python_path, yaml_path, changed, view)


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
                return ky.OUTPUT_REPLACES_INPUT.at(
                    f"-o {out_dir}",
                    f"writing {output.name} there would replace the {kind}; kale-yaml never writes"
                    " the notebook or the sidecar: choose another output folder",
                )
            return at_input(
                f"build writes its output {display_path(output)}, which is the {kind}; kale-yaml never"
                f" writes the {kind}: move or rename it, or build with -o DIR"
            )

        return refuse

    def at_sidecar(message: str) -> Diagnostic:
        return ky.OUTPUT_REPLACES_INPUT.at(display_path(project.sidecar), message)

    def at_notebook_key(message: str) -> Diagnostic:
        return project.config.where.child("notebook").at(ky.OUTPUT_REPLACES_INPUT, message)

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
