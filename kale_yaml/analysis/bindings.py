"""What one unit's code does to names, as far as it has been walked: the reads (and whether each name must
exist), the names bound for certain or maybe, deleted, or changed in place, and the code that functions and
classes carry (`Deferred`). `Walker` (walker.py) updates this state statement by statement, in execution
order; `Env` is what the units before leave behind.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

from kale_yaml.analysis.process_state import GENERATORS, Replay
from kale_yaml.analysis.scopes import EMPTY, Deferred

NUMPY_GENERATOR = GENERATORS[1].variable


@dataclass(frozen=True)
class Read:
    name: str
    cell: int
    line: int
    kind: str  # "hard": must exist; "soft": taken if provided; "deleted": after `del` in this unit
    lenient: bool  # after a star import or an unreadable cell in this unit


@dataclass
class Env:
    """What the units so far leave behind."""

    provider: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, Deferred] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)  # names whose binding is an import
    deleted: dict[str, int] = field(default_factory=dict)  # name -> cell whose `del` removed it
    star: str | None = None  # the last unit with `from x import *`
    opaque: bool = False  # some cell could not be analysed: its bindings are unknown
    imported: dict[str, Replay] = field(
        default_factory=dict
    )  # name -> a step's top-level import that binds it
    origins: dict[str, str] = field(default_factory=dict)  # name -> what an import bound it to (`numpy`)
    estimators: set[str] = field(default_factory=set)  # scikit-learn objects built without random_state
    settings: list[tuple[str, Replay]] = field(default_factory=list)  # (step, setting), in notebook order


State = tuple[set[str], set[str], dict[str, int]]  # definitely bound, maybe bound, definitely deleted


class Bindings:
    """The names of one unit: what is read, bound, deleted and changed, and what each name carries."""

    def __init__(self, env: Env, builtin_names: frozenset[str]) -> None:
        self.env, self.builtins = env, builtin_names
        self.definite: set[str] = set()
        self.maybe: set[str] = set()
        self.gone: dict[str, int] = {}
        self.touched: set[str] = set()
        self.changed: set[str] = set()
        self.deferred: dict[str, Deferred] = {}
        self.modules: dict[str, bool] = {}
        self.aliases: dict[str, str] = {}
        self.loops: list[frozenset[str]] = []
        self.comps: list[set[str]] = []
        self.classes: list[tuple[set[str], list[Deferred]]] = []
        self.refs: list[tuple[set[str], list[Deferred]]] = []
        self.reads: list[Read] = []
        self.lenient = self.star = False
        self.cell = 0
        # process state (process_state.py): what this unit imports at top level, what the imported names are,
        # its settings, and the names holding scikit-learn objects built without random_state
        self.imports: dict[str, Replay] = {}
        self.origins: dict[str, str | None] = {}
        self.settings: list[Replay] = []
        self.estimators: dict[str, bool] = {}
        self.unseeded = 0  # how many such objects were built so far
        self.stuck: list[tuple[int, int, str]] = []  # (cell, line, why): state later steps do not get

    def setting(self, statement: ast.stmt, text: str, label: str) -> None:
        """A setter later steps run again, with the imports it reads, if they have every name it reads."""
        names = [n for n in ast.walk(statement) if isinstance(n, ast.Name)]
        local = {n.id for n in names if not isinstance(n.ctx, ast.Load)}
        needs: list[Replay] = []
        missing: list[str] = []
        parameters: list[str] = []
        for name in sorted({n.id for n in names} - local):
            if self.env.provider.get(name) == "parameter" and name not in self.touched:
                parameters.append(name)
            elif name in self.imports:
                needs.append(self.imports[name])
            elif name in self.touched:
                missing.append(name)
            elif name in self.env.imported:
                needs.append(self.env.imported[name])
            elif self.env.provider.get(name) not in ("parameter", "prelude") and (
                name not in self.builtins or name in self.env.provider
            ):
                missing.append(name)
        if missing:
            names_read = ", ".join(f"'{m}'" for m in missing)
            why = f"reads {names_read}, which later steps do not have at their start"
            self.stuck.append(
                (
                    self.cell,
                    statement.lineno,
                    f"the {label} set here is not re-applied in later steps: it {why}",
                )
            )
            return
        self.settings.append(
            Replay(self.cell, statement.lineno, text, label, tuple(needs), tuple(parameters))
        )

    def origin(self, name: str) -> str | None:
        return self.origins[name] if name in self.origins else self.env.origins.get(name)

    def draw(self, generator: str, line: int) -> None:
        """A draw from a global random generator reads its state (if a unit before left it) and changes it."""
        self.note(generator, line, soft=True)
        self.bind(generator)

    # -- state ---------------------------------------------------------------------------------------------
    def deferred_of(self, name: str) -> Deferred:
        return self.deferred[name] if name in self.deferred else self.env.deferred.get(name, EMPTY)

    def is_module(self, name: str) -> bool:
        return self.modules.get(name, name in self.env.modules)

    def save(self) -> State:
        return set(self.definite), set(self.maybe), dict(self.gone)

    def restore(self, state: State) -> None:
        self.definite, self.maybe, self.gone = set(state[0]), set(state[1]), dict(state[2])

    def merge(self, states: Sequence[State]) -> None:
        self.definite = set.intersection(*(s[0] for s in states))
        self.maybe = set.union(*(s[1] for s in states))
        self.gone = {n: c for n, c in states[0][2].items() if all(n in s[2] for s in states)}

    def local(self, name: str) -> bool:
        return any(name in c for c in self.comps) or bool(self.classes and name in self.classes[-1][0])

    def bind(
        self, name: str, deferred: Deferred = EMPTY, module: bool = False, definite: bool = True
    ) -> None:
        if self.classes:
            self.classes[-1][0].add(name)
            return
        if definite and not self.comps:
            self.definite.add(name)
        self.maybe.add(name)
        self.touched.add(name)
        self.gone.pop(name, None)
        self.aliases.pop(name, None)
        self.deferred[name], self.modules[name] = deferred, module
        self.forget(name)

    def forget(self, name: str) -> None:
        """`name` is rebound or deleted: no longer an import to replay or a scikit-learn object."""
        self.imports.pop(name, None)
        self.origins[name] = None
        self.estimators[name] = False

    def unbind(self, name: str, line: int) -> None:
        self.load(name, line)  # `del x` needs x
        if self.classes:
            self.classes[-1][0].discard(name)
            return
        self.definite.discard(name)
        self.maybe.discard(name)
        self.touched.add(name)
        self.gone[name] = self.cell
        self.deferred[name], self.modules[name] = EMPTY, False
        self.forget(name)

    def change(self, root: str | None, carried: Deferred = EMPTY) -> None:
        if root is None or self.local(root) or self.is_module(root):
            return
        if self.is_estimator(root):  # fitting an estimator built without random_state draws from numpy's
            self.draw(NUMPY_GENERATOR, 0)
        if root in self.builtins and root not in self.maybe and root not in self.env.provider:
            return
        for name in {root, self.aliases.get(root, root)}:
            self.touched.add(name)
            self.changed.add(name)
            if carried:
                self.deferred[name] = self.deferred_of(name) | carried

    # -- reads ---------------------------------------------------------------------------------------------
    def load(self, name: str, line: int, soft: bool = False) -> None:
        if self.local(name):
            return
        if self.refs:
            self.refs[-1][0].add(name)
        self.note(name, line, soft)
        self.use(self.deferred_of(name), line, {name})

    def is_estimator(self, name: str | None) -> bool:
        """Whether `name` holds a scikit-learn object built without random_state."""
        return name is not None and self.estimators.get(name, name in self.env.estimators)

    def note(self, name: str, line: int, soft: bool) -> None:
        if name in self.definite:
            return
        if name in self.gone:
            kind = "soft" if soft else "deleted"
        elif soft or name in self.maybe or any(name in names for names in self.loops):
            kind = "soft"
        else:
            kind = "hard"
        self.reads.append(Read(name, self.cell, line, kind, self.lenient))

    def use(self, deferred: Deferred, line: int, seen: set[str]) -> None:
        """Code behind a used name may run now: its reads (transitively) and global effects happen here."""
        queue = [deferred]
        while queue:
            d = queue.pop()
            for name in sorted(d.needs - seen):
                seen.add(name)
                if not self.local(name):
                    self.note(name, line, soft=True)
                    queue.append(self.deferred_of(name))
            for name in d.binds:
                self.maybe.add(name)
                self.touched.add(name)
                self.changed.add(name)
                self.gone.pop(name, None)
            for name in d.changes:
                self.change(name)

    def carried(self, names: set[str], lambdas: Sequence[Deferred]) -> Deferred:
        """What a value built from `names` carries: the code of the functions and classes it is made from.

        Notebook functions and classes travel with the values they are part of (by value), so a reader needs
        their globals, not their names: `m = Net()` carries what Net's methods read.
        """
        result = EMPTY
        for d in [*(self.deferred_of(n) for n in names), *lambdas]:
            result |= d
        return result
