"""Which variables each step reads, changes and hands on, so the pipeline computes what the notebook does.

The code runs, in the notebook's order, as parameters, then the prelude, then each step; `provider[name]` is
the last of these units that bound, deleted or changed `name` in place. A step reads a name it uses before
binding it itself, from the provider as of the step's start, and that provider (if a step) outputs the name.

Bindings: every assignment form, `for`/`with`/`except` targets, imports, `def`, `class`, `del`, match captures
and walrus targets; comprehension variables stay inside the comprehension. A `def`/`lambda` body runs when
called: its free names and the globals it assigns (`global g`) or changes are attached to the function's name
(a method's to its class; a value built from such a name, like `m = Net()`, carries them too) and count
where the name is used (loaded or decorated), transitively. `if`/`try`/loops are followed: a name bound on
some paths only is also read from the earlier provider, and a loop may read what it binds later.

In-place changes: `x[k] = v`, `x.a = v`, `del x[k]`, `x[k] += v` and method calls on a name (`xs.append(1)`,
`model.fit(X)`, `a.b.c.update(...)`) change the root name, except methods in `NON_MUTATING` (or starting with
`NON_MUTATING_PREFIXES`) called without `inplace=True`; within a unit, after `b = a` a change of `b` is also a
change of `a`. Names bound by an import never change.

Process state (process_state.py): a name a step bound by a top-level import is imported again by a later step
that reads it (`replay`), not shipped; the settings a step makes (the table's setters) are replayed at the
start of every later step; a global random generator's state is a variable spelled `<numpy.random>` (no
Python name), bound by a seed and read and bound by a draw, so it travels from step to step as data.

Limitations: passing a value to a function is no change (except the first argument of `ARGUMENT_MUTATORS`,
like `random.shuffle(xs)`); objects reached through a call (`obj.get().append(1)`) are not followed; aliasing
across steps is lost (each variable travels on its own); names a star import rebinds keep their earlier
provider. Steps declare `inputs:`/`outputs:` for anything this misses.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.bindings import Env, Read
from kale_yaml.analysis.magics import CellMagicError, executable_source, parse_cell, written_file
from kale_yaml.analysis.process_state import Replay
from kale_yaml.analysis.scopes import NON_MUTATING
from kale_yaml.analysis.walker import TooDeepToWalk, Walker
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import AnalysisError, Collector, Diagnostic
from kale_yaml.load.cells import Cell

__all__ = [
    "DEFAULT_BUILTINS", "NON_MUTATING", "Analysis", "CellFacts", "CellMagicError", "StepFlow", "analyse",
    "cell_facts", "executable_source",
]  # fmt: skip

PRELUDE = "prelude"
PARAMETER = "parameter"
DEFAULT_BUILTINS: frozenset[str] = frozenset(dir(builtins)) | {"__builtins__", "display"}
TOO_DEEP_FOR_ANALYSIS = (
    "this statement is nested too deeply for kale-yaml's analysis of the data flow: split it into several"
    " statements"
)


@dataclass(frozen=True)
class CellFacts:
    """What one cell does on its own: names it binds or changes, uses before binding, and changes in place."""

    number: int
    defines: tuple[str, ...]  # sorted: bound, deleted or changed
    reads: tuple[str, ...]  # sorted: used before the cell binds them (builtins left out)
    changes: tuple[str, ...]  # sorted: changed in place


@dataclass(frozen=True)
class StepFlow:
    name: str
    reads: dict[str, str]  # variable -> provider: a step name, "prelude" or "parameter"
    outputs: tuple[str, ...]  # sorted: variables later steps take from this step
    defines: tuple[str, ...]  # sorted: every name it binds, deletes or changes in place
    sources: tuple[tuple[int, str], ...]  # (cell number, executable source), in order
    # (cell number, statement): imports, settings and files of earlier steps it runs again first, in order
    replay: tuple[tuple[int, str], ...] = ()
    sets: tuple[tuple[int, str], ...] = ()  # (cell number, what): the process state it leaves to later steps


@dataclass(frozen=True)
class Analysis:
    steps: tuple[StepFlow, ...]
    warnings: tuple[Diagnostic, ...]
    prelude: tuple[tuple[int, str], ...] = ()  # (cell number, executable source) of the prelude cells

    def step(self, name: str) -> StepFlow:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


# -- cells ---------------------------------------------------------------------------------------------------
def cell_facts(cell: Cell, builtin_names: Collection[str] = DEFAULT_BUILTINS) -> CellFacts:
    """What one code cell does on its own. Raises AnalysisError when the cell cannot be parsed."""
    out = Collector()
    tree, _ = parse_cell(cell, "<notebook>", out)
    out.raise_if_any(AnalysisError)
    walker = Walker(Env(), frozenset(builtin_names))
    if tree is not None:
        try:
            walker.run(cell.number, tree)
        except TooDeepToWalk as e:
            raise AnalysisError.single(
                ky.TOO_DEEP_TO_ANALYSE.at("<notebook>", TOO_DEEP_FOR_ANALYSIS, cell=cell.number, line=e.line)
            ) from None
    reads = {r.name for r in walker.reads if r.name not in walker.builtins or r.name in walker.touched}
    return CellFacts(
        cell.number, tuple(sorted(walker.touched)), tuple(sorted(reads)), tuple(sorted(walker.changed))
    )


# -- the notebook --------------------------------------------------------------------------------------------
StepSpec = tuple[str, Sequence[Cell], Sequence[str] | None, Sequence[str] | None]


@dataclass
class _Flow:
    name: str
    before: dict[str, str]
    reads: dict[str, str] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    defines: set[str] = field(default_factory=set)
    conditional: set[str] = field(default_factory=set)  # defined, but maybe absent when the unit ends
    sources: list[tuple[int, str]] = field(default_factory=list)
    replay: set[Replay] = field(default_factory=set)
    sets: list[Replay] = field(default_factory=list)


def analyse(
    notebook_name: str,
    prelude: Sequence[Cell],
    parameters: Sequence[str],
    steps: Sequence[StepSpec],
    builtin_names: Collection[str] = DEFAULT_BUILTINS,
    locate_key: KeyLocator | None = None,
) -> Analysis:
    """Reads (with providers), outputs, definitions and sources per step; AnalysisError lists all errors.

    `locate_key(step, key, index, kind, message)` places a problem with a step's `inputs:`/`outputs:` entry
    in the sidecar; without it, such problems point at the step's first cell.
    """
    return _Analyser(notebook_name, frozenset(builtin_names), locate_key).run(prelude, parameters, steps)


KeyLocator = Callable[[str, str, int, Kind, str], Diagnostic]


class _Analyser:
    def __init__(self, notebook: str, builtin_names: frozenset[str], locate_key: KeyLocator | None) -> None:
        self.notebook, self.builtins, self.locate_key = notebook, builtin_names, locate_key
        self.out = Collector()
        self.env = Env()
        self.steps: dict[str, _Flow] = {}  # by name, for providers
        self.order: list[_Flow] = []
        self.reported: set[tuple[str, str]] = set()

    def run(self, prelude: Sequence[Cell], parameters: Sequence[str], steps: Sequence[StepSpec]) -> Analysis:
        self.env.provider.update(dict.fromkeys(parameters, PARAMETER))
        head = self.unit(PRELUDE, prelude, None, None)
        stuck: list[tuple[str, int, int, str]] = []
        for name, cells, inputs, outputs in steps:
            if name in (PRELUDE, PARAMETER):
                first = next((c.number for c in cells), None)
                self.error(ky.RESERVED_STEP_NAME, first, None, f"a step cannot be named '{name}'")
            self.order.append(self.unit(name, cells, inputs, outputs, stuck))
            self.steps[name] = self.order[-1]
        self.out.raise_if_any(AnalysisError)
        last = self.order[-1].name if self.order else None
        for step, cell, line, message in stuck:  # what the last step leaves behind no step needs
            if step != last:
                self.out.add(ky.STATE_NOT_CARRIED.at(self.notebook, message, cell=cell, line=line))
        flows = []
        for flow in self.order:
            reads = {**{n: p for n, p in head.reads.items() if p == PARAMETER}, **flow.reads}
            replay = tuple((r.cell, r.source) for r in sorted(flow.replay))
            sets = tuple((r.cell, r.what) for r in flow.sets)
            flows.append(
                StepFlow(flow.name, dict(sorted(reads.items())), tuple(sorted(flow.outputs)),
                         tuple(sorted(flow.defines)), tuple(flow.sources), replay, sets)
            )  # fmt: skip
        found = sorted(self.out.warnings, key=lambda d: (d.cell or 0, d.line or 0, d.message))
        return Analysis(tuple(flows), tuple(found), tuple(head.sources))

    def error(self, kind: Kind, cell: int | None, line: int | None, message: str) -> None:
        self.out.add(kind.at(self.notebook, message, cell=cell, line=line))

    def key_error(
        self, step: str, key: str, index: int, first_cell: int | None, kind: Kind, message: str
    ) -> None:
        if self.locate_key is not None:
            self.out.add(self.locate_key(step, key, index, kind, message))
        else:
            self.error(kind, first_cell, None, f"{key}: {message}")

    def unit(
        self,
        name: str,
        cells: Sequence[Cell],
        inputs: Sequence[str] | None,
        outputs: Sequence[str] | None,
        stuck: list[tuple[str, int, int, str]] | None = None,
    ) -> _Flow:
        flow = _Flow(name, before=dict(self.env.provider))
        if stuck is not None:  # a step: what earlier steps set, it sets again first
            for _step, setting in self.env.settings:
                flow.replay.update((setting, *setting.needs))
                flow.reads.update(dict.fromkeys(setting.parameters, PARAMETER))
        walker = Walker(self.env, self.builtins)
        opaque = False
        for cell in cells:
            if cell.cell_type != "code":
                continue
            tree, source = parse_cell(cell, self.notebook, self.out)
            flow.sources.append((cell.number, source))
            if tree is None or not self.walked(walker, cell.number, tree, source):
                walker.lenient = opaque = True
            written = written_file(cell) if tree is not None else None
            if written is not None:
                walker.settings.append(Replay(cell.number, 1, written[1], f"file {written[0]}"))
        if stuck is not None:
            stuck.extend((name, cell, line, message) for cell, line, message in walker.stuck)
            flow.sets = list(walker.settings)
        first = next((c.number for c in cells), None)
        for key, names in (("inputs", inputs or ()), ("outputs", outputs or ())):
            for i, n in enumerate(names):
                if not n.isidentifier() or keyword.iskeyword(n):
                    self.key_error(
                        name, key, i, first, ky.NOT_A_VARIABLE, f"'{n}' is not a Python variable name"
                    )
        for i, n in enumerate(inputs or ()):
            if n in self.env.provider:
                self.take(flow, n, self.env.provider[n], replayed=False)
            elif n.isidentifier():
                self.key_error(name, "inputs", i, first, ky.UNDEFINED_INPUT, f"no earlier cell defines '{n}'")
        self.resolve(flow, walker)
        self.commit(flow, walker, set(outputs or ()), opaque)
        return flow

    def walked(self, walker: Walker, cell: int, tree: ast.Module, source: str) -> bool:
        """Walk a cell's code; False, with the error reported, when it is nested too deeply to walk."""
        try:
            walker.run(cell, tree, source)
        except TooDeepToWalk as e:
            self.error(ky.TOO_DEEP_TO_ANALYSE, cell, e.line, TOO_DEEP_FOR_ANALYSIS)
            return False
        return True

    def resolve(self, flow: _Flow, walker: Walker) -> None:
        env = self.env
        for r in walker.reads:
            provider = env.provider.get(r.name)
            if r.kind == "deleted":
                self.report(
                    flow, r, ky.DELETED_NAME, f"'{r.name}' is read here after `del {r.name}` removed it"
                )
            elif r.name in env.deleted:
                if r.kind == "hard":
                    message = f"'{r.name}' is read here but cell {env.deleted[r.name]} deletes it"
                    self.report(flow, r, ky.DELETED_NAME, message)
            elif provider is not None:
                self.take(flow, r.name, provider)
            elif r.kind == "soft" or r.lenient or r.name in self.builtins or env.opaque:
                continue
            elif env.star is not None:  # assumed to come from that unit's `from x import *`
                self.take(flow, r.name, env.star)
            else:
                message = f"'{r.name}' is read here but no earlier cell defines it"
                self.report(flow, r, ky.UNDEFINED_NAME, message)

    def report(self, flow: _Flow, r: Read, kind: Kind, message: str) -> None:
        if (flow.name, r.name) not in self.reported:
            self.reported.add((flow.name, r.name))
            self.error(kind, r.cell, r.line, message)

    def take(self, flow: _Flow, name: str, provider: str, replayed: bool = True) -> None:
        imported = self.env.imported.get(name)
        if replayed and imported is not None and provider in self.steps:
            flow.replay.add(imported)  # imported again at the step's start rather than shipped
            return
        # A loop, not recursion: the chain of steps that each bind `name` on some paths only is as long as
        # the sidecar's list of steps.
        while True:
            flow.reads.setdefault(name, provider)
            source = self.steps.get(provider)
            if source is None or name in source.outputs:
                return
            source.outputs.add(name)
            if name not in source.conditional or name in source.reads or name not in source.before:
                return
            # the source binds `name` on some paths only: it passes on the earlier value otherwise
            flow, provider = source, source.before[name]

    def commit(self, flow: _Flow, walker: Walker, outputs: set[str], opaque: bool) -> None:
        env = self.env
        flow.defines = walker.touched | outputs
        flow.outputs |= outputs
        flow.conditional = flow.defines - walker.definite - set(flow.reads) - set(walker.gone)
        for n in flow.defines:
            env.provider[n] = flow.name
            env.deleted.pop(n, None)
        env.deleted.update(walker.gone)
        env.deferred.update(walker.deferred)
        for n, is_module in walker.modules.items():
            (env.modules.add if is_module else env.modules.discard)(n)
        if walker.star:
            env.star = flow.name
        env.opaque = env.opaque or opaque
        for n, origin in walker.origins.items():
            if origin is None:
                env.origins.pop(n, None)
            else:
                env.origins[n] = origin
        for n, built in walker.estimators.items():
            (env.estimators.add if built else env.estimators.discard)(n)
        for n in flow.defines:
            env.imported.pop(n, None)
        if flow.name != PRELUDE:  # the prelude runs in every step: nothing of it needs replaying
            env.imported.update({n: r for n, r in walker.imports.items() if n in flow.defines})
            env.settings.extend((flow.name, setting) for setting in walker.settings)
