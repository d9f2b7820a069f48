"""Walks one unit's module-level code in execution order: the names it reads, binds, deletes and changes.

A unit is the prelude or one step; `Env` is what the units before it leave behind. The walker records, in
the state it inherits from `Bindings` (bindings.py), every read (and whether the name must exist), and which
names end up bound, maybe bound, deleted or changed in place; `kale_yaml.analysis.steps` turns these into
providers and outputs. Function and class bodies
are summarised by `kale_yaml.analysis.scopes`, and their effects applied where their names are used.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from functools import partial

from kale_yaml.analysis.bindings import NUMPY_GENERATOR, Bindings
from kale_yaml.analysis.process_state import (
    Replay,
    generator_event,
    generators_used,
    import_bindings,
    qualified,
    setting_label,
    unseeded_estimator,
)
from kale_yaml.analysis.scopes import (
    ARGUMENT_MUTATORS,
    EMPTY,
    Deferred,
    bound_names,
    called_name,
    function_deferred,
    mutates,
    root_name,
    target_names,
)


class TooDeepToWalk(Exception):
    """A statement whose nesting exhausted the recursion limit while being walked."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is nested too deeply to walk")
        self.line = line


Task = ast.AST | Callable[[], None]  # a node to visit, or work to do once the nodes before it are visited


class Walker(Bindings):
    """Walks one unit's module-level code in execution order, recording reads, bindings and changes."""

    def run(self, cell: int, tree: ast.Module, source: str = "") -> None:
        self.cell = cell
        for statement in tree.body:
            try:
                self.observe(statement, source)
                self.stmt(statement)
                if isinstance(statement, ast.Import | ast.ImportFrom):
                    for bound, _origin, text in import_bindings(statement):
                        self.imports[bound] = Replay(cell, statement.lineno, text, "import")
            except RecursionError:
                # Expressions are walked without recursion; what is left (blocks in blocks, nested unpacking)
                # Python itself bounds, but well above what a deep stack leaves here. The cell is reported;
                # the half-walked statement's context must not leak into the next cells.
                self.loops, self.comps, self.classes, self.refs = [], [], [], []
                raise TooDeepToWalk(statement.lineno) from None

    def observe(self, statement: ast.stmt, source: str) -> None:
        """A top-level setter becomes a setting later steps replay; one nested in a block cannot be."""
        label = setting_label(statement, self.origin)
        if label is not None:
            text = ast.get_source_segment(source, statement) if source else None
            self.setting(statement, text or ast.unparse(statement), label)
            return
        # A function's body runs where it is called, setters included; a block's runs here, once.
        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        pending = [] if isinstance(statement, functions) else list(ast.iter_child_nodes(statement))
        while pending:
            node = pending.pop()
            if not isinstance(node, ast.stmt | ast.excepthandler | ast.match_case) or isinstance(
                node, functions
            ):
                continue
            what = setting_label(node, self.origin) if isinstance(node, ast.stmt) else None
            if isinstance(node, ast.stmt) and what is not None:
                problem = "inside a block, where kale-yaml cannot run it again"
                self.stuck.append((self.cell, node.lineno, f"the {what} set here {problem}"))
            pending.extend(ast.iter_child_nodes(node))

    # -- statements ----------------------------------------------------------------------------------------
    def block(self, body: Sequence[ast.stmt]) -> None:
        for node in body:
            self.stmt(node)

    # Over 60 lines: one branch per kind of statement, each saying in what order its parts run. Read
    # together they are the walker's execution order; split up, that order would be spread out.
    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node)
        elif isinstance(node, ast.ClassDef):
            self.klass(node)
        elif isinstance(node, ast.Assign):
            built = self.unseeded
            value, alias = self.value(node.value), root_name(node.value)
            for target in node.targets:
                self.target(target, value, alias)
            built_unseeded = self.unseeded > built and not self.classes
            for target in node.targets if built_unseeded else ():
                if isinstance(target, ast.Name):
                    self.estimators[target.id] = True
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
                self.target(node.target, self.value(node.value), root_name(node.value))
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)
            self.loop([node.target, *node.body], node.body, node.target, root_name(node.iter))
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
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(a.name == "*" for a in node.names):
                self.lenient = self.star = True
            for bound, origin, _text in import_bindings(node):
                self.bind(bound, module=True)
                self.origins[bound] = origin
        elif not isinstance(node, ast.Global | ast.Nonlocal):
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.expr(decorator)
        self.arguments(node.args)
        if node.returns is not None:
            self.annotation(node.returns)
        deferred = function_deferred(node, frozenset()) | generators_used(node, self.origin)
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
        self.loops.append(frozenset(bound_names(parts)[0]))
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

    def target(self, node: ast.expr, value: Deferred = EMPTY, alias: str | None = None) -> None:
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
            self.change(root_name(node), value)

    def delete(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            self.unbind(node.id, node.lineno)
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self.delete(element)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)
            self.change(root_name(node))

    # -- expressions ---------------------------------------------------------------------------------------
    def value(self, node: ast.expr) -> Deferred:
        """Visit the value of an assignment; return what the assigned names carry."""
        if isinstance(node, ast.Lambda):  # `f = lambda: k` reads k when f is called, not now
            self.arguments(node.args)
            return function_deferred(node, frozenset())
        self.refs.append((set(), []))
        self.expr(node)
        names, lambdas = self.refs.pop()
        if self.refs:
            self.refs[-1][0].update(names)
            self.refs[-1][1].extend(lambdas)
        return self.carried(names, lambdas)

    def expr(self, node: ast.AST) -> None:
        """Visit an expression in evaluation order.

        With a stack of tasks rather than recursion: a chain like `1+1+...+1` nests as deep as it is long,
        and Python runs thousands of terms that would exhaust the recursion limit here.
        """
        self.perform([node])

    def perform(self, tasks: list[Task]) -> None:
        pending = list(reversed(tasks))
        while pending:
            task = pending.pop()
            if isinstance(task, ast.AST):
                pending.extend(reversed(self.visit(task)))
            else:
                task()

    def visit(self, node: ast.AST) -> list[Task]:
        """Do what `node` itself does now; return what follows in order: its parts, and work after them."""
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id, node.lineno)
            elif isinstance(node.ctx, ast.Store):
                self.bind(node.id, definite=not self.comps)
            else:
                self.unbind(node.id, node.lineno)
            return []
        if isinstance(node, ast.NamedExpr):
            return [node.value, lambda: self.bind(node.target.id, definite=not self.comps)]
        if isinstance(node, ast.Lambda):  # probably called now (`df.apply(lambda r: r * k)`)
            return [*self.argument_tasks(node.args), lambda: self.lambda_called(node)]
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            return self.comprehension_tasks(node)
        if isinstance(node, ast.Call):
            arguments = [*node.args, *(k.value for k in node.keywords)]
            return [node.func, lambda: self.refs.append((set(), [])), *arguments, lambda: self.called(node)]
        return list(ast.iter_child_nodes(node))

    def lambda_called(self, node: ast.Lambda) -> None:
        deferred = function_deferred(node, frozenset())
        if self.refs:
            self.refs[-1][1].append(deferred)
        self.use(deferred, node.lineno, set())

    def comprehension_tasks(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> list[Task]:
        """The first iterable runs outside; the targets are local to the comprehension from there on."""
        names: set[str] = set()
        tasks: list[Task] = [node.generators[0].iter, partial(self.comps.append, names)]
        for i, generator in enumerate(node.generators):
            if i:
                tasks.append(generator.iter)
            tasks.append(partial(names.update, target_names(generator.target)))
            tasks.extend(generator.ifs)
        tasks.extend([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])
        tasks.append(self.leave_comprehension)
        return tasks

    def leave_comprehension(self) -> None:
        self.comps.pop()

    def called(self, node: ast.Call) -> None:
        """After a call's arguments: what it may change, and what the changed names now carry."""
        names, lambdas = self.refs.pop()
        if self.refs:
            self.refs[-1][0].update(names)
            self.refs[-1][1].extend(lambdas)
        carried = self.carried(names, lambdas)
        if isinstance(node.func, ast.Attribute) and mutates(node):
            self.change(root_name(node.func.value), carried)
        if called_name(node) in ARGUMENT_MUTATORS and node.args:
            self.change(root_name(node.args[0]), carried)
        name = qualified(node.func, self.origin)
        event = generator_event(node, name)
        if event is not None:
            generator, seeds = event
            if seeds:
                self.bind(generator.variable)
            else:
                self.draw(generator.variable, node.lineno)
        if unseeded_estimator(node, name):
            self.unseeded += 1
        for argument in node.args:  # cross_val_score(model, ...) fits it
            if isinstance(argument, ast.Name) and self.is_estimator(argument.id):
                self.draw(NUMPY_GENERATOR, node.lineno)

    def arguments(self, args: ast.arguments) -> None:
        self.perform(self.argument_tasks(args))

    def argument_tasks(self, args: ast.arguments) -> list[Task]:
        """Defaults are evaluated where the function is defined; annotations only looked at."""
        defaults: list[Task] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        annotated = [a.annotation for a in every if a is not None and a.annotation is not None]
        return defaults + [partial(self.annotation, annotation) for annotation in annotated]

    def annotation(self, node: ast.expr) -> None:
        """Annotations may be strings or postponed: their names are taken when provided, never errors."""
        for name in ast.walk(node):
            if isinstance(name, ast.Name):
                self.load(name.id, name.lineno, soft=True)
