"""`kale-yaml import-kale NOTEBOOK`: the sidecar that a Kale notebook's cell tags and `kubeflow_notebook`
metadata describe, so a Kale user can switch with the notebook left exactly as it is.

Code cells are read in order, as Kale's NotebookProcessor reads them:
- `step:NAME` (or the older `block:NAME`) starts a step, or continues it when NAME came before; `prev:NAME`
  orders it after another step (`after:`). Only the tags of a step's first cell configure it, as in Kale.
- An untagged cell joins whatever the last tagged cell started: a step, `imports`, `functions`,
  `pipeline-parameters` or `pipeline-metrics`. A `skip` cell does not count as "last": the cell after it joins
  the step before it. Untagged cells before the first tag run nowhere in Kale, so they go under `skip`.
- `imports` and `functions` cells become the prelude (Kale runs both at the start of every step);
  `pipeline-parameters` cells the parameters; `pipeline-metrics` cells (one variable per line, bare or as
  `print(name)`) the metric names, and the cells themselves are skipped. The metrics step is the last step
  that defines one of them; a metric another step computes becomes one of its `inputs:`.
- Step settings: `limit:cpu:2`, `limit:memory:1Gi` (limits: `cpu_limit`, `memory_limit`),
  `limit:nvidia.com/gpu:1` (`gpu`, `gpu_type`), `image:IMAGE`, `label:KEY:VALUE`, `annotation:KEY:VALUE`.
  Kale 2.3's `secret:SECRET:KEY:ENV` (the Secret's KEY as environment variable ENV; ENV may be left out,
  then KEY in upper case) and `cache:enabled|disabled` (true/false also read) are read as well.
- `kubeflow_notebook`: pipeline_name, pipeline_description, experiment_name (or experiment.name),
  docker_image / base_image, steps_defaults (the same tags, for every step), volumes (`pvc` -> `claim`,
  `new_pvc` -> `create`; `snapshot: true` -> a snapshot after the run), storage_class_name,
  volume_access_mode, autosnapshot (snapshots before each step and after the run).
Anything that cannot be mapped is a warning, never dropped in silence. Kale builds its DAG from `prev:` tags
alone; `kale_dag.dependency_warnings` names the data edges kale-yaml's analysis adds on top of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.steps import cell_facts
from kale_yaml.authoring.draft import step_name
from kale_yaml.authoring.kale_settings import (
    KALE_METADATA_KEY,
    Settings,
    apply_setting,
    pipeline_lines,
    volume_lines,
)
from kale_yaml.authoring.sidecar_writer import commented, describe_numbers, flow, header, scalar, selector
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Diagnostic, KaleYamlError
from kale_yaml.load.cells import Notebook
from kale_yaml.load.nbmeta import NotebookMetadata

SPECIAL_TAGS = ("skip", "imports", "functions", "pipeline-parameters", "pipeline-metrics")
_STEP_TAG = re.compile(r"^(step|block):(.*)$")
_METRIC_LINE = re.compile(r"^\s*(?:print\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)|([A-Za-z_][A-Za-z0-9_]*))\s*$")


@dataclass
class _Step:
    name: str
    cells: list[int]
    after: list[str]
    settings: Settings
    inputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KaleImport:
    text: str
    warnings: tuple[Diagnostic, ...]
    steps: tuple[str, ...]
    prev_edges: tuple[tuple[str, str], ...]  # Kale's DAG: (before, after) from prev: tags


def import_kale(notebook: Notebook, meta: NotebookMetadata) -> KaleImport:
    return _Importer(notebook, meta).run()


class _Importer:
    def __init__(self, notebook: Notebook, meta: NotebookMetadata) -> None:
        self.notebook, self.meta = notebook, meta
        self.warnings: list[Diagnostic] = []
        self.steps: dict[str, _Step] = {}
        self.renamed: dict[str, str] = {}
        self.prelude: list[int] = []
        self.parameters: list[int] = []
        self.metrics_cells: list[int] = []
        self.skipped: list[int] = []
        self.prev_edges: list[tuple[str, str]] = []
        self.metrics: list[str] = []
        self.metrics_step: str | None = None
        kale = meta.metadata.get(KALE_METADATA_KEY) or {}
        if not isinstance(kale, dict):
            self.warn(ky.KALE_LEFT_OUT, f"notebook metadata '{KALE_METADATA_KEY}' is not a mapping; left out")
            kale = {}
        self.kale: dict[str, Any] = kale

    def warn(self, kind: Kind, message: str, cell: int | None = None) -> None:
        self.warnings.append(kind.at(self.notebook.display_name, message, cell=cell))

    # -- cells ---------------------------------------------------------------------------------------------
    def run(self) -> KaleImport:
        last: str | None = None  # what an untagged cell joins: a step name or a special tag
        step_of_last: str | None = None
        for cell in self.notebook.cells:
            if cell.cell_type != "code":
                continue
            kind, name, prevs, settings = self.read_tags(cell.number)
            if kind == "skip":
                self.skipped.append(cell.number)
                continue
            if kind in SPECIAL_TAGS:
                self.special(kind, cell.number)
                last = kind
                continue
            if kind is None:
                if last is None:
                    if not cell.is_blank:
                        self.warn(
                            ky.KALE_UNTAGGED,
                            "untagged and before the first tagged cell: Kale leaves it out, so it goes"
                            " under skip",
                            cell.number,
                        )
                        self.skipped.append(cell.number)
                elif last in SPECIAL_TAGS:
                    self.special(last, cell.number)
                else:
                    self.steps[last].cells.append(cell.number)
                continue
            assert name is not None
            if last == "pipeline-metrics":
                self.warn(
                    ky.KALE_CELL_ORDER,
                    f"step '{name}' comes after the pipeline-metrics cell; Kale wants that cell last",
                    cell.number,
                )
            self.step_cell(cell.number, name, prevs, settings, continues=step_of_last == name)
            last = step_of_last = name
        self.assign_metrics()
        return KaleImport(self.render(), tuple(self.warnings), tuple(self.steps), tuple(self.prev_edges))

    def step_cell(
        self, number: int, name: str, prevs: list[str], settings: Settings, continues: bool
    ) -> None:
        """A cell tagged step:NAME: it starts the step, or adds to it (`continues`: right after its cells)."""
        if name in self.steps:
            if prevs or settings.sources:
                tags = ", ".join([*(f"prev:{p}" for p in prevs), *settings.sources])
                self.warn(
                    ky.KALE_LEFT_OUT,
                    f"{tags} left out: only the first cell of step '{name}' configures it, as in Kale",
                    number,
                )
            if not continues:
                self.warn(
                    ky.KALE_CELL_ORDER,
                    f"step '{name}' continues here after other steps' cells; as in Kale, all its cells"
                    " run together, in its first cell's place",
                    number,
                )
            self.steps[name].cells.append(number)
            return
        for prev in prevs:
            if prev not in self.steps:
                self.warn(
                    ky.KALE_UNKNOWN_PREV,
                    f"prev:{prev}: no step '{prev}' comes before this cell (Kale rejects this)",
                    number,
                )
            self.prev_edges.append((prev, name))
        self.steps[name] = _Step(name, [number], list(prevs), settings)

    def special(self, kind: str, number: int) -> None:
        {
            "imports": self.prelude,
            "functions": self.prelude,
            "pipeline-parameters": self.parameters,
            "pipeline-metrics": self.metrics_cells,
        }[kind].append(number)

    def read_tags(self, number: int) -> tuple[str | None, str | None, list[str], Settings]:
        """(kind: a special tag, "step" or None; step name; prev names; settings) of one cell."""
        tags = self.meta.tags(number)
        for tag in tags:
            if not isinstance(tag, str):
                self.warn(ky.KALE_LEFT_OUT, f"tag {tag!r} is not a string; left out", number)
        text_tags = [t for t in tags if isinstance(t, str)]
        special = next((t for t in text_tags if t in SPECIAL_TAGS), None)
        if special is not None:
            others = [t for t in text_tags if t != special]
            if others:
                self.warn(
                    ky.KALE_LEFT_OUT,
                    f"{', '.join(others)} left out: Kale reads only '{special}' on this cell",
                    number,
                )
            return special, None, [], Settings()
        names: list[str] = []
        prevs: list[str] = []
        settings = Settings()
        for tag in text_tags:
            step_tag = _STEP_TAG.match(tag)
            if step_tag:
                if step_tag.group(2):
                    names.append(self.step_name(step_tag.group(2), number))
            elif tag.startswith("prev:") and tag[5:]:
                prevs.append(self.step_name(tag[5:], number))
            elif not apply_setting(tag, settings, lambda kind, message: self.warn(kind, message, number)):
                self.warn(
                    ky.KALE_LEFT_OUT, f"tag '{tag}' is not a Kale tag kale-yaml knows; left out", number
                )
        if len(names) > 1:
            self.warn(
                ky.KALE_SEVERAL_NAMES,
                f"several step names ({', '.join(names)}); Kale allows one, kale-yaml uses '{names[0]}'",
                number,
            )
        if not names:
            ignored = [*(f"prev:{p}" for p in prevs), *settings.sources]
            if ignored:
                self.warn(ky.KALE_LEFT_OUT, f"{', '.join(ignored)} left out: the cell names no step", number)
            return None, None, [], Settings()
        return "step", names[0], prevs, settings

    def step_name(self, kale_name: str, number: int) -> str:
        if kale_name not in self.renamed:
            name = step_name(kale_name, set(), "step")
            if name != kale_name:
                self.warn(
                    ky.KALE_RENAMED,
                    f"step '{kale_name}' is called '{name}' here: step names are [a-z][a-z0-9_]*"
                    " and not prelude or parameter",
                    number,
                )
            self.renamed[kale_name] = name
        return self.renamed[kale_name]

    # -- metrics -------------------------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        names: list[str] = []
        for number in self.metrics_cells:
            for i, line in enumerate(self.notebook.cell(number).source.splitlines(), start=1):
                if not line.strip() or line.strip().startswith("#"):
                    continue
                match = _METRIC_LINE.match(line)
                if match is None:
                    self.warn(
                        ky.KALE_METRICS,
                        f"line {i} of the pipeline-metrics cell is not a variable name; left out",
                        number,
                    )
                    continue
                name = match.group(1) or match.group(2)
                if name not in names:
                    names.append(name)
        return names

    def assign_metrics(self) -> None:
        self.metrics = self.metric_names()
        if not self.metrics or not self.steps:
            if self.metrics:
                self.warn(
                    ky.KALE_METRICS,
                    "the pipeline-metrics cell names metrics but there is no step to report them",
                )
            return
        defines: dict[str, set[str]] = {}
        reads: dict[str, set[str]] = {}
        for step in self.steps.values():
            defines[step.name], reads[step.name] = set(), set()
            for number in step.cells:
                try:
                    facts = cell_facts(self.notebook.cell(number))
                except KaleYamlError:
                    continue  # validation reports the cell
                defines[step.name] |= set(facts.defines)
                reads[step.name] |= set(facts.reads)
        order = list(self.steps)
        computing = [name for name in order if defines[name] & set(self.metrics)]
        chosen = computing[-1] if computing else order[-1]
        self.metrics_step = chosen
        for metric in self.metrics:
            if metric in defines[chosen] | reads[chosen]:
                continue
            makers = [name for name in order if metric in defines[name]]
            if makers:
                self.steps[chosen].inputs.append(metric)
                self.warn(
                    ky.KALE_METRICS,
                    f"metric '{metric}' is computed by step '{makers[-1]}'; step '{chosen}' reports the"
                    " metrics, so it takes it as an input (`inputs:`)",
                )

    # -- the sidecar ---------------------------------------------------------------------------------------
    def render(self) -> str:
        name = self.notebook.path.name
        lines = header(f"Written by `kale-yaml import-kale` from the Kale tags and metadata of {name}.")
        lines.append(
            "# The notebook keeps its tags; from now on this file, not the tags, says what runs where."
        )
        lines.append("version: 1")
        lines.append(f"notebook: {scalar(name)}")
        lines.extend(pipeline_lines(self.kale, self.notebook.path.stem, self.warn))
        transparent = self.transparent()
        if self.parameters:
            lines.append("parameters:")
            lines.append(
                commented(
                    f"  cells: {flow(selector(self.parameters, transparent))}", "tagged pipeline-parameters"
                )
            )
        if self.prelude:
            lines.append(
                commented(
                    f"prelude: {flow(selector(self.prelude, transparent))}",
                    "tagged imports and functions: Kale runs them in every step",
                )
            )
        skipped = sorted({*self.skipped, *self.metrics_cells})
        if skipped:
            what = [
                "tagged skip" if self.skipped else "",
                "the pipeline-metrics cell" if self.metrics_cells else "",
            ]
            lines.append(
                commented(f"skip: {flow(selector(skipped, transparent))}", ", ".join(w for w in what if w))
            )
        if not self.steps:
            self.warn(ky.KALE_NO_STEPS, "no cell is tagged step:NAME, so there is no step; add steps by hand")
        lines.append("steps:")
        for step in self.steps.values():
            lines.extend(_step_lines(step, transparent))
        if self.metrics and self.metrics_step:
            lines.append("metrics:")
            lines.append(commented(f"  step: {self.metrics_step}", "the step that computes them"))
            lines.append(commented(f"  names: {flow(self.metrics)}", "the pipeline-metrics cell"))
        lines.extend(volume_lines(self.kale, self.warn))
        return "\n".join(lines) + "\n"

    def transparent(self) -> set[int]:
        """Cells a range may run over: markdown, raw, skipped cells and blank code cells nobody claims."""
        owned = {
            *self.prelude,
            *self.parameters,
            *self.metrics_cells,
            *(n for s in self.steps.values() for n in s.cells),
        }
        return {
            c.number
            for c in self.notebook.cells
            if c.cell_type != "code" or c.number in self.skipped or (c.is_blank and c.number not in owned)
        }


def _step_lines(step: _Step, transparent: set[int]) -> list[str]:
    lines = [
        f"  - name: {step.name}",
        commented(f"    cells: {flow(selector(step.cells, transparent))}", describe_numbers(step.cells)),
    ]
    if step.after:
        lines.append(commented(f"    after: {flow(step.after)}", " ".join(f"prev:{p}" for p in step.after)))
    if step.inputs:
        lines.append(commented(f"    inputs: {flow(step.inputs)}", "metrics computed by earlier steps"))
    for key, value in step.settings.values.items():
        lines.append(f"    {key}: {flow(value)}")
    if step.settings.sources:
        lines.append(f"    # from the tags {', '.join(step.settings.sources)}")
    return lines


def import_to_sidecar(notebook_path: Path) -> tuple[Path, KaleImport]:
    """Write the sidecar beside a Kale notebook; an existing sidecar is an error and stays as it was."""
    from kale_yaml.authoring.sidecar_writer import notebook_for_new_sidecar, write_new
    from kale_yaml.load.paths import display_path

    notebook, sidecar = notebook_for_new_sidecar(notebook_path)
    result = import_kale(notebook, notebook.metadata)
    write_new(sidecar, result.text, display_path(sidecar))
    return sidecar, result
