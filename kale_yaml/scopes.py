"""What running a function's or class's body may do: the globals it reads, assigns and changes in place.

A `def`/`lambda` body runs when called, not where it is defined, so its effects are kept as a `Deferred`
attached to its name and applied wherever the name is used (the rules are in `kale_yaml.analysis`).
Also here: which method calls count as in-place changes (`NON_MUTATING`, `ARGUMENT_MUTATORS`), and the
helpers on names in the syntax tree that the walker of module-level code shares with this module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass


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
    body: list[ast.AST] = [*node.body] if isinstance(node.body, list) else [node.body]
    bound, declared, nonlocal_ = bound_names(body)
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
) -> Deferred:
    visible = (outer | local) - declared
    inner = outer if cls else frozenset(visible)  # a class body's names are invisible to its methods
    needs: set[str] = set()
    changes: set[str] = set()
    result = Deferred(binds=frozenset(declared & bound))
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in visible:
            needs.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
            stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)])
            result |= function_deferred(node, inner)
            continue
        elif isinstance(node, ast.ClassDef):
            stack.extend([*node.decorator_list, *node.bases, *(k.value for k in node.keywords)])
            names, globals_, _ = bound_names(node.body)
            result |= _free([*node.body], names - globals_, globals_, inner, names, cls=True)
            continue
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            targets: set[str] = set()
            parts: list[ast.AST] = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for generator in node.generators:
                targets |= target_names(generator.target)
                parts += [generator.iter, *generator.ifs]
            result |= _free(parts, targets, set(), inner, set())
            continue
        elif isinstance(node, ast.Call):
            roots = (
                [root_name(node.func.value)] if isinstance(node.func, ast.Attribute) and mutates(node) else []
            )
            if called_name(node) in ARGUMENT_MUTATORS and node.args:
                roots.append(root_name(node.args[0]))
            changes.update(r for r in roots if r is not None and r not in visible)
        elif isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(node.ctx, ast.Load):
            root = root_name(node)
            if root is not None and root not in visible:
                changes.add(root)
        stack.extend(ast.iter_child_nodes(node))
    return result | Deferred(frozenset(needs), frozenset(), frozenset(changes))
