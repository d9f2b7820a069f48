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
change of `a`. Names bound by an import never change (module state like `np.random.seed` stays in its
process).

Limitations: passing a value to a function is no change (except the first argument of `ARGUMENT_MUTATORS`,
like `random.shuffle(xs)`); objects reached through a call (`obj.get().append(1)`) are not followed; aliasing
across steps is lost (each variable travels on its own); names a star import rebinds keep their earlier
provider. Steps declare `inputs:`/`outputs:` for anything this misses.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from kale_yaml.errors import AnalysisError, Collector, Diagnostic
from kale_yaml.magics import CellMagicError, executable_source, parse_cell
from kale_yaml.model import Cell

__all__ = [
    "DEFAULT_BUILTINS", "NON_MUTATING", "Analysis", "CellFacts", "CellMagicError", "StepFlow", "analyse",
    "cell_facts", "executable_source",
]  # fmt: skip

PRELUDE = "prelude"
PARAMETER = "parameter"
DEFAULT_BUILTINS: frozenset[str] = frozenset(dir(builtins)) | {"__builtins__", "display"}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NON_MUTATING: frozenset[str] = _words(
    # Python strings, containers, numbers and dates
    "copy get keys values items index count format format_map join split rsplit splitlines startswith "
    "endswith lower upper strip lstrip rstrip replace find rfind encode decode title capitalize casefold "
    "zfill center ljust rjust partition rpartition union intersection difference symmetric_difference "
    "bit_length conjugate as_integer_ratio hex fromkeys strftime isoformat timestamp date time weekday "
    # NumPy and pandas: reductions, views and new objects (pandas' inplace=True still counts as a change)
    "sum mean median std var min max prod cumsum cumprod abs round any all argmax argmin argsort idxmax "
    "idxmin nunique unique value_counts describe info head tail sample reshape ravel flatten transpose "
    "squeeze astype item dot nonzero clip corr cov quantile rank diff pct_change shift equals between "
    "duplicated drop_duplicates nlargest nsmallest groupby agg aggregate apply applymap map transform pipe "
    "merge pivot pivot_table melt stack unstack explode query filter select_dtypes drop dropna fillna rename "
    "reset_index set_index sort_values sort_index assign where mask interpolate iterrows itertuples rolling "
    "expanding resample memory_usage notna notnull tolist numpy detach "
    # scikit-learn, Keras and PyTorch inference
    "predict predict_proba predict_log_proba decision_function score score_samples inverse_transform "
    "evaluate summary count_params parameters named_parameters state_dict numel size dim"
)
NON_MUTATING_PREFIXES = ("to_", "is", "get_")
ARGUMENT_MUTATORS = _words(
    "shuffle heappush heappop heapify heappushpop heapreplace insort insort_left insort_right"
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


@dataclass(frozen=True)
class _Deferred:
    """What using a name may run: the names it reads, the globals it assigns and those it changes."""

    needs: frozenset[str] = frozenset()
    binds: frozenset[str] = frozenset()
    changes: frozenset[str] = frozenset()

    def __or__(self, other: _Deferred) -> _Deferred:
        return _Deferred(self.needs | other.needs, self.binds | other.binds, self.changes | other.changes)

    def __bool__(self) -> bool:
        return bool(self.needs or self.binds or self.changes)


EMPTY = _Deferred()


@dataclass(frozen=True)
class _Read:
    name: str
    cell: int
    line: int
    kind: str  # "hard": must exist; "soft": taken if provided; "deleted": after `del` in this unit
    lenient: bool  # after a star import or an unreadable cell in this unit


@dataclass
class _Env:
    """What the units so far leave behind."""

    provider: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, _Deferred] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)  # names whose binding is an import
    deleted: dict[str, int] = field(default_factory=dict)  # name -> cell whose `del` removed it
    star: str | None = None  # the last unit with `from x import *`
    opaque: bool = False  # some cell could not be analysed: its bindings are unknown


@dataclass
class _Flow:
    name: str
    before: dict[str, str]
    reads: dict[str, str] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    defines: set[str] = field(default_factory=set)
    conditional: set[str] = field(default_factory=set)  # defined, but maybe absent when the unit ends
    sources: list[tuple[int, str]] = field(default_factory=list)


State = tuple[set[str], set[str], dict[str, int]]  # definitely bound, maybe bound, definitely deleted


class _Walker:
    """Walks one unit's module-level code in execution order, recording reads, bindings and changes."""

    def __init__(self, env: _Env, builtin_names: frozenset[str]) -> None:
        self.env, self.builtins = env, builtin_names
        self.definite: set[str] = set()
        self.maybe: set[str] = set()
        self.gone: dict[str, int] = {}
        self.touched: set[str] = set()
        self.changed: set[str] = set()
        self.deferred: dict[str, _Deferred] = {}
        self.modules: dict[str, bool] = {}
        self.aliases: dict[str, str] = {}
        self.loops: list[frozenset[str]] = []
        self.comps: list[set[str]] = []
        self.classes: list[tuple[set[str], list[_Deferred]]] = []
        self.refs: list[tuple[set[str], list[_Deferred]]] = []
        self.reads: list[_Read] = []
        self.lenient = self.star = False
        self.cell = 0

    def run(self, cell: int, tree: ast.Module) -> None:
        self.cell = cell
        self.block(tree.body)

    # -- state ---------------------------------------------------------------------------------------------
    def deferred_of(self, name: str) -> _Deferred:
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
        self, name: str, deferred: _Deferred = EMPTY, module: bool = False, definite: bool = True
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

    def change(self, root: str | None, carried: _Deferred = EMPTY) -> None:
        if root is None or self.local(root) or self.is_module(root):
            return
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

    def note(self, name: str, line: int, soft: bool) -> None:
        if name in self.definite:
            return
        if name in self.gone:
            kind = "soft" if soft else "deleted"
        elif soft or name in self.maybe or any(name in names for names in self.loops):
            kind = "soft"
        else:
            kind = "hard"
        self.reads.append(_Read(name, self.cell, line, kind, self.lenient))

    def use(self, deferred: _Deferred, line: int, seen: set[str]) -> None:
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

    def carried(self, names: set[str], lambdas: Sequence[_Deferred]) -> _Deferred:
        """What a value built from `names` carries: the code of the functions and classes it is made from.

        Notebook functions and classes travel with the values they are part of (by value), so a reader needs
        their globals, not their names: `m = Net()` carries what Net's methods read.
        """
        result = EMPTY
        for d in [*(self.deferred_of(n) for n in names), *lambdas]:
            result |= d
        return result

    # -- statements ----------------------------------------------------------------------------------------
    def block(self, body: Sequence[ast.stmt]) -> None:
        for node in body:
            self.stmt(node)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node)
        elif isinstance(node, ast.ClassDef):
            self.klass(node)
        elif isinstance(node, ast.Assign):
            value, alias = self.value(node.value), _root(node.value)
            for target in node.targets:
                self.target(target, value, alias)
        elif isinstance(node, ast.AugAssign):
            value = self.value(node.value)
            if isinstance(node.target, ast.Name):
                self.load(node.target.id, node.lineno)
                if node.target.id in self.aliases:  # `b += [1]` extends the list `b` shares with `a`
                    self.change(self.aliases[node.target.id])
                self.bind(node.target.id, self.deferred_of(node.target.id) | value)
            else:
                self.target(node.target, value)
        elif isinstance(node, ast.AnnAssign):
            self.annotation(node.annotation)
            if node.value is not None:
                self.target(node.target, self.value(node.value), _root(node.value))
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)
            self.loop([node.target, *node.body], node.body, node.target, _root(node.iter))
            self.block(node.orelse)
        elif isinstance(node, ast.While):
            self.loop([node.test, *node.body], node.body, None, None)
            self.block(node.orelse)
        elif isinstance(node, ast.If):
            self.expr(node.test)
            self.branches([node.body, node.orelse])
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.try_(node)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            before, outcomes = self.save(), [self.save()]
            for case in node.cases:
                self.restore(before)
                self.pattern(case.pattern)
                if case.guard is not None:
                    self.expr(case.guard)
                self.block(case.body)
                outcomes.append(self.save())
            self.merge(outcomes)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.delete(target)
        elif isinstance(node, ast.Import):
            for a in node.names:
                self.bind(a.asname or a.name.split(".")[0], module=True)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "*":
                    self.lenient = self.star = True
                else:
                    self.bind(a.asname or a.name, module=True)
        elif not isinstance(node, ast.Global | ast.Nonlocal):
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.expr(decorator)
        self.arguments(node.args)
        if node.returns is not None:
            self.annotation(node.returns)
        deferred = _function_deferred(node, frozenset())
        if self.classes:
            self.classes[-1][0].add(node.name)
            self.classes[-1][1].append(deferred)
            return
        self.bind(node.name, deferred)
        if node.decorator_list:  # a decorator may call the function
            self.use(deferred, node.lineno, {node.name})

    def klass(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self.expr(decorator)
        self.refs.append((set(), []))
        for base in [*node.bases, *(k.value for k in node.keywords)]:
            self.expr(base)
        bases = self.refs.pop()[0]
        self.classes.append((set(), []))
        self.block(node.body)
        deferred = self.carried(bases, self.classes.pop()[1])
        if self.classes:
            self.classes[-1][0].add(node.name)
            self.classes[-1][1].append(deferred)
            return
        self.bind(node.name, deferred)
        if node.decorator_list:
            self.use(deferred, node.lineno, {node.name})

    def loop(
        self, parts: list[ast.AST], body: list[ast.stmt], target: ast.expr | None, alias: str | None
    ) -> None:
        """A loop body (and a `while` test, in `parts`) may run many times, or not at all."""
        self.loops.append(frozenset(_bound_names(parts)[0]))
        before = self.save()
        if target is not None:
            self.target(target, EMPTY, alias)
        else:
            self.expr(parts[0])
        self.block(body)
        self.merge([before, self.save()])
        self.loops.pop()

    def branches(self, bodies: Sequence[Sequence[ast.stmt]]) -> None:
        before, outcomes = self.save(), []
        for body in bodies:
            self.restore(before)
            self.block(body)
            outcomes.append(self.save())
        self.merge(outcomes)

    def try_(self, node: ast.Try | ast.TryStar) -> None:
        before = self.save()
        self.block(node.body)
        after_body = self.save()
        self.merge([before, after_body])
        start, outcomes = self.save(), []
        for handler in node.handlers:
            self.restore(start)
            if handler.type is not None:
                self.expr(handler.type)
            if handler.name:
                self.bind(handler.name)
            self.block(handler.body)
            if handler.name:  # Python deletes the exception name after the handler
                self.definite.discard(handler.name)
                self.maybe.discard(handler.name)
            outcomes.append(self.save())
        self.restore(after_body)
        self.block(node.orelse)
        self.merge([*outcomes, self.save()])
        self.block(node.finalbody)

    def pattern(self, pattern: ast.pattern) -> None:
        for node in ast.walk(pattern):
            if isinstance(node, ast.MatchValue):
                self.expr(node.value)
            elif isinstance(node, ast.MatchClass):
                self.expr(node.cls)
            elif isinstance(node, ast.MatchMapping):
                for key in node.keys:
                    self.expr(key)
                if node.rest:
                    self.bind(node.rest)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                self.bind(node.name)

    def target(self, node: ast.expr, value: _Deferred = EMPTY, alias: str | None = None) -> None:
        if isinstance(node, ast.Name):
            self.bind(node.id, value)
            if alias is not None and not self.classes and alias != node.id:
                self.aliases[node.id] = self.aliases.get(alias, alias)
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self.target(element, value)
        elif isinstance(node, ast.Starred):
            self.target(node.value, value)
        else:  # x.a = ..., x[k] = ...: evaluates x and k, changes x
            for child in ast.iter_child_nodes(node):
                self.expr(child)
            self.change(_root(node), value)

    def delete(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            self.unbind(node.id, node.lineno)
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self.delete(element)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)
            self.change(_root(node))

    # -- expressions ---------------------------------------------------------------------------------------
    def value(self, node: ast.expr) -> _Deferred:
        """Visit the value of an assignment; return what the assigned names carry."""
        if isinstance(node, ast.Lambda):  # `f = lambda: k` reads k when f is called, not now
            self.arguments(node.args)
            return _function_deferred(node, frozenset())
        self.refs.append((set(), []))
        self.expr(node)
        names, lambdas = self.refs.pop()
        if self.refs:
            self.refs[-1][0].update(names)
            self.refs[-1][1].extend(lambdas)
        return self.carried(names, lambdas)

    def expr(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id, node.lineno)
            elif isinstance(node.ctx, ast.Store):
                self.bind(node.id, definite=not self.comps)
            else:
                self.unbind(node.id, node.lineno)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.bind(node.target.id, definite=not self.comps)
        elif isinstance(node, ast.Lambda):  # probably called now (`df.apply(lambda r: r * k)`)
            self.arguments(node.args)
            deferred = _function_deferred(node, frozenset())
            if self.refs:
                self.refs[-1][1].append(deferred)
            self.use(deferred, node.lineno, set())
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.expr(node.generators[0].iter)
            names: set[str] = set()
            self.comps.append(names)
            for i, generator in enumerate(node.generators):
                if i:
                    self.expr(generator.iter)
                names.update(_target_names(generator.target))
                for condition in generator.ifs:
                    self.expr(condition)
            for element in [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]:
                self.expr(element)
            self.comps.pop()
        elif isinstance(node, ast.Call):
            self.call(node)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def call(self, node: ast.Call) -> None:
        self.expr(node.func)
        self.refs.append((set(), []))
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            self.expr(argument)
        names, lambdas = self.refs.pop()
        if self.refs:
            self.refs[-1][0].update(names)
            self.refs[-1][1].extend(lambdas)
        carried = self.carried(names, lambdas)
        if isinstance(node.func, ast.Attribute) and _mutates(node):
            self.change(_root(node.func.value), carried)
        if _called_name(node) in ARGUMENT_MUTATORS and node.args:
            self.change(_root(node.args[0]), carried)

    def arguments(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.expr(default)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.annotation(arg.annotation)

    def annotation(self, node: ast.expr) -> None:
        """Annotations may be strings or postponed: their names are taken when provided, never errors."""
        for name in ast.walk(node):
            if isinstance(name, ast.Name):
                self.load(name.id, name.lineno, soft=True)


# -- scopes of functions and classes ------------------------------------------------------------------------
def _root(node: ast.AST) -> str | None:
    """`a` for `a`, `a.b`, `a[0].c`; None when the chain starts anywhere else (a call, a literal)."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _mutates(node: ast.Call) -> bool:
    """Whether a method call `x.m(...)` may change x."""
    for k in node.keywords:
        if k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and k.value.value in (False, None)):
            return True
    method = _called_name(node) or ""
    return method not in NON_MUTATING and not method.startswith(NON_MUTATING_PREFIXES)


def _target_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound_names(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str], set[str]]:
    """Names bound in one scope (a nested def or class binds its name only); its globals and nonlocals."""
    bound: set[str] = set()
    declared: dict[type, set[str]] = {ast.Global: set(), ast.Nonlocal: set()}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared[type(node)].update(node.names)
        elif isinstance(node, ast.comprehension):  # its target is local to the comprehension
            stack.extend([node.iter, *node.ifs])
            continue
        stack.extend(ast.iter_child_nodes(node))
    return bound, declared[ast.Global], declared[ast.Nonlocal]


def _function_deferred(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, outer: frozenset[str]
) -> _Deferred:
    """The globals a function's body reads, assigns (`global g`) and changes in place when it runs."""
    body: list[ast.AST] = [*node.body] if isinstance(node.body, list) else [node.body]
    bound, declared, nonlocal_ = _bound_names(body)
    a = node.args
    params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p is not None}
    return _free(body, params | (bound - declared - nonlocal_), declared, outer, bound)


def _free(
    body: list[ast.AST],
    local: set[str],
    declared: set[str],
    outer: frozenset[str],
    bound: set[str],
    cls: bool = False,
) -> _Deferred:
    visible = (outer | local) - declared
    inner = outer if cls else frozenset(visible)  # a class body's names are invisible to its methods
    needs: set[str] = set()
    changes: set[str] = set()
    result = _Deferred(binds=frozenset(declared & bound))
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in visible:
            needs.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
            stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)])
            result |= _function_deferred(node, inner)
            continue
        elif isinstance(node, ast.ClassDef):
            stack.extend([*node.decorator_list, *node.bases, *(k.value for k in node.keywords)])
            names, globals_, _ = _bound_names(node.body)
            result |= _free([*node.body], names - globals_, globals_, inner, names, cls=True)
            continue
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            targets: set[str] = set()
            parts: list[ast.AST] = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for generator in node.generators:
                targets |= _target_names(generator.target)
                parts += [generator.iter, *generator.ifs]
            result |= _free(parts, targets, set(), inner, set())
            continue
        elif isinstance(node, ast.Call):
            roots = (
                [_root(node.func.value)] if isinstance(node.func, ast.Attribute) and _mutates(node) else []
            )
            if _called_name(node) in ARGUMENT_MUTATORS and node.args:
                roots.append(_root(node.args[0]))
            changes.update(r for r in roots if r is not None and r not in visible)
        elif isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(node.ctx, ast.Load):
            root = _root(node)
            if root is not None and root not in visible:
                changes.add(root)
        stack.extend(ast.iter_child_nodes(node))
    return result | _Deferred(frozenset(needs), frozenset(), frozenset(changes))


# -- cells ---------------------------------------------------------------------------------------------------
def cell_facts(cell: Cell, builtin_names: Collection[str] = DEFAULT_BUILTINS) -> CellFacts:
    """What one code cell does on its own. Raises AnalysisError when the cell cannot be parsed."""
    out = Collector()
    tree, _ = parse_cell(cell, "<notebook>", out)
    out.raise_if_any(AnalysisError)
    walker = _Walker(_Env(), frozenset(builtin_names))
    if tree is not None:
        walker.run(cell.number, tree)
    reads = {r.name for r in walker.reads if r.name not in walker.builtins or r.name in walker.touched}
    return CellFacts(
        cell.number, tuple(sorted(walker.touched)), tuple(sorted(reads)), tuple(sorted(walker.changed))
    )


# -- the notebook --------------------------------------------------------------------------------------------
StepSpec = tuple[str, Sequence[Cell], Sequence[str] | None, Sequence[str] | None]


def analyse(
    notebook_name: str,
    prelude: Sequence[Cell],
    parameters: Sequence[str],
    steps: Sequence[StepSpec],
    builtin_names: Collection[str] = DEFAULT_BUILTINS,
) -> Analysis:
    """Reads (with providers), outputs, definitions and sources per step; AnalysisError lists all errors."""
    return _Analyser(notebook_name, frozenset(builtin_names)).run(prelude, parameters, steps)


class _Analyser:
    def __init__(self, notebook: str, builtin_names: frozenset[str]) -> None:
        self.notebook, self.builtins = notebook, builtin_names
        self.out = Collector()
        self.env = _Env()
        self.steps: dict[str, _Flow] = {}  # by name, for providers
        self.order: list[_Flow] = []
        self.reported: set[tuple[str, str]] = set()

    def run(self, prelude: Sequence[Cell], parameters: Sequence[str], steps: Sequence[StepSpec]) -> Analysis:
        self.env.provider.update(dict.fromkeys(parameters, PARAMETER))
        head = self.unit(PRELUDE, prelude, None, None)
        for name, cells, inputs, outputs in steps:
            if name in (PRELUDE, PARAMETER):
                self.error(next((c.number for c in cells), None), None, f"a step cannot be named '{name}'")
            self.order.append(self.unit(name, cells, inputs, outputs))
            self.steps[name] = self.order[-1]
        self.out.raise_if_any(AnalysisError)
        flows = []
        for flow in self.order:
            reads = {**{n: p for n, p in head.reads.items() if p == PARAMETER}, **flow.reads}
            flows.append(
                StepFlow(flow.name, dict(sorted(reads.items())), tuple(sorted(flow.outputs)),
                         tuple(sorted(flow.defines)), tuple(flow.sources))
            )  # fmt: skip
        found = sorted(self.out.warnings, key=lambda d: (d.cell or 0, d.line or 0, d.message))
        return Analysis(tuple(flows), tuple(found), tuple(head.sources))

    def error(self, cell: int | None, line: int | None, message: str) -> None:
        self.out.add(Diagnostic(file=self.notebook, cell=cell, line=line, message=message))

    def unit(
        self, name: str, cells: Sequence[Cell], inputs: Sequence[str] | None, outputs: Sequence[str] | None
    ) -> _Flow:
        flow = _Flow(name, before=dict(self.env.provider))
        walker = _Walker(self.env, self.builtins)
        opaque = False
        for cell in cells:
            if cell.cell_type != "code":
                continue
            tree, source = parse_cell(cell, self.notebook, self.out)
            flow.sources.append((cell.number, source))
            if tree is None:
                walker.lenient = opaque = True
            else:
                walker.run(cell.number, tree)
        first = next((c.number for c in cells), None)
        for key, names in (("inputs", inputs or ()), ("outputs", outputs or ())):
            for n in names:
                if not n.isidentifier() or keyword.iskeyword(n):
                    self.error(first, None, f"{key}: '{n}' is not a Python variable name")
        for n in inputs or ():
            if n in self.env.provider:
                self.take(flow, n, self.env.provider[n])
            elif n.isidentifier():
                self.error(first, None, f"inputs: '{n}' is not defined by any earlier cell")
        self.resolve(flow, walker)
        self.commit(flow, walker, set(outputs or ()), opaque)
        return flow

    def resolve(self, flow: _Flow, walker: _Walker) -> None:
        env = self.env
        for r in walker.reads:
            provider = env.provider.get(r.name)
            if r.kind == "deleted":
                self.report(flow, r, f"'{r.name}' is read here after `del {r.name}` removed it")
            elif r.name in env.deleted:
                if r.kind == "hard":
                    self.report(flow, r, f"'{r.name}' is read here but cell {env.deleted[r.name]} deletes it")
            elif provider is not None:
                self.take(flow, r.name, provider)
            elif r.kind == "soft" or r.lenient or r.name in self.builtins or env.opaque:
                continue
            elif env.star is not None:  # assumed to come from that unit's `from x import *`
                self.take(flow, r.name, env.star)
            else:
                self.report(flow, r, f"'{r.name}' is read here but no earlier cell defines it")

    def report(self, flow: _Flow, r: _Read, message: str) -> None:
        if (flow.name, r.name) not in self.reported:
            self.reported.add((flow.name, r.name))
            self.error(r.cell, r.line, message)

    def take(self, flow: _Flow, name: str, provider: str) -> None:
        flow.reads.setdefault(name, provider)
        source = self.steps.get(provider)
        if source is None or name in source.outputs:
            return
        source.outputs.add(name)
        if name in source.conditional and name not in source.reads and name in source.before:
            # the source binds `name` on some paths only: it passes on the earlier value otherwise
            self.take(source, name, source.before[name])

    def commit(self, flow: _Flow, walker: _Walker, outputs: set[str], opaque: bool) -> None:
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
