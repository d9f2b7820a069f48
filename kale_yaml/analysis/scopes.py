"""What running a function's or class's body may do: the globals it reads, assigns and changes in place.

A `def`/`lambda` body runs when called, not where it is defined, so its effects are kept as a `Deferred`
attached to its name and applied wherever the name is used (the rules are in `kale_yaml.analysis.steps`).
Also here: which method calls count as in-place changes (`NON_MUTATING`, `ARGUMENT_MUTATORS`), and the
helpers on names in the syntax tree that the walker of module-level code shares with this module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field


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
class Deferred:
    """What using a name may run: the names it reads, the globals it assigns and those it changes."""

    needs: frozenset[str] = frozenset()
    binds: frozenset[str] = frozenset()
    changes: frozenset[str] = frozenset()

    def __or__(self, other: Deferred) -> Deferred:
        return Deferred(self.needs | other.needs, self.binds | other.binds, self.changes | other.changes)

    def __bool__(self) -> bool:
        return bool(self.needs or self.binds or self.changes)


EMPTY = Deferred()


def root_name(node: ast.AST) -> str | None:
    """`a` for `a`, `a.b`, `a[0].c`; None when the chain starts anywhere else (a call, a literal)."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def called_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def mutates(node: ast.Call) -> bool:
    """Whether a method call `x.m(...)` may change x."""
    for k in node.keywords:
        if k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and k.value.value in (False, None)):
            return True
    method = called_name(node) or ""
    return method not in NON_MUTATING and not method.startswith(NON_MUTATING_PREFIXES)


def target_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def bound_names(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str], set[str]]:
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


def function_deferred(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, outer: frozenset[str]
) -> Deferred:
    """The globals a function's body reads, assigns (`global g`) and changes in place when it runs."""
    found = _Found()
    # Nested scopes wait in a list rather than being walked by recursion: `lambda: lambda: ...` nests as
    # deep as Python allows, which is deeper than the recursion limit.
    scopes = [_function_scope(node, outer)]
    while scopes:
        scopes.extend(_scan(scopes.pop(), found))
    return Deferred(frozenset(found.needs), frozenset(found.binds), frozenset(found.changes))


@dataclass(frozen=True)
class _Scope:
    """A body whose free names count: a function's, a class's or a comprehension's."""

    body: list[ast.AST]
    local: set[str]  # names bound here
    declared: set[str]  # `global` names: bound here, but belonging outside
    outer: frozenset[str]  # names local to the enclosing functions
    bound: set[str]
    cls: bool = False

    def visible(self) -> frozenset[str]:
        return frozenset((self.outer | self.local) - self.declared)

    def inner(self) -> frozenset[str]:
        """What the scopes nested here see: a class body's names are invisible to its methods."""
        return self.outer if self.cls else self.visible()


@dataclass
class _Found:
    needs: set[str] = field(default_factory=set)
    binds: set[str] = field(default_factory=set)
    changes: set[str] = field(default_factory=set)


def _function_scope(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, outer: frozenset[str]
) -> _Scope:
    body: list[ast.AST] = [*node.body] if isinstance(node.body, list) else [node.body]
    bound, declared, nonlocal_ = bound_names(body)
    a = node.args
    params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p is not None}
    return _Scope(body, params | (bound - declared - nonlocal_), declared, outer, bound)


def _nested_scope(node: ast.AST, inner: frozenset[str]) -> tuple[_Scope, list[ast.AST]] | None:
    """The scope `node` opens, if any, and its parts evaluated in the enclosing scope (decorators, defaults,
    bases)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        decorators = [] if isinstance(node, ast.Lambda) else node.decorator_list
        defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        return _function_scope(node, inner), [*decorators, *defaults]
    if isinstance(node, ast.ClassDef):
        names, globals_, _ = bound_names(node.body)
        scope = _Scope([*node.body], names - globals_, globals_, inner, names, cls=True)
        return scope, [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
        targets: set[str] = set()
        parts: list[ast.AST] = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for generator in node.generators:
            targets |= target_names(generator.target)
            parts += [generator.iter, *generator.ifs]
        return _Scope(parts, targets, set(), inner, set()), []
    return None


def _scan(scope: _Scope, found: _Found) -> list[_Scope]:
    """Add what the code of `scope` itself reads, assigns and changes to `found`; return the scopes nested
    in it."""
    visible, inner = scope.visible(), scope.inner()
    found.binds |= scope.declared & scope.bound
    nested: list[_Scope] = []
    stack = list(scope.body)
    while stack:
        node = stack.pop()
        opened = _nested_scope(node, inner)
        if opened is not None:
            nested.append(opened[0])
            stack.extend(opened[1])
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in visible:
            found.needs.add(node.id)
        elif isinstance(node, ast.Call):
            found.changes.update(r for r in _changed_by_call(node) if r not in visible)
        elif isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(node.ctx, ast.Load):
            root = root_name(node)
            if root is not None and root not in visible:
                found.changes.add(root)
        stack.extend(ast.iter_child_nodes(node))
    return nested


def _changed_by_call(node: ast.Call) -> set[str]:
    roots = [root_name(node.func.value)] if isinstance(node.func, ast.Attribute) and mutates(node) else []
    if called_name(node) in ARGUMENT_MUTATORS and node.args:
        roots.append(root_name(node.args[0]))
    return {r for r in roots if r is not None}
