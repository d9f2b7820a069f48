"""What each step reads, changes and hands on: the pipeline must compute what the notebook computes."""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kale_yaml.analysis.steps import (
    Analysis,
    CellMagicError,
    StepFlow,
    analyse,
    cell_facts,
    executable_source,
)
from kale_yaml.errors import AnalysisError, Diagnostic
from kale_yaml.load.cells import Cell


def cell(number: int, source: str, cell_type: str = "code") -> Cell:
    return Cell(number, f"id{number}", cell_type, textwrap.dedent(source).strip("\n") + "\n")


def run(
    steps: Mapping[str, Sequence[str]],
    prelude: Sequence[str] = (),
    parameters: Sequence[str] = (),
    inputs: Mapping[str, Sequence[str]] | None = None,
    outputs: Mapping[str, Sequence[str]] | None = None,
) -> Analysis:
    """Cells are numbered from 1: prelude cells first, then each step's cells in order."""
    number = 0

    def cells(sources: Sequence[str]) -> list[Cell]:
        nonlocal number
        made = []
        for source in sources:
            number += 1
            made.append(cell(number, source))
        return made

    prelude_cells = cells(prelude)
    specs = [
        (name, cells(sources), (inputs or {}).get(name), (outputs or {}).get(name))
        for name, sources in steps.items()
    ]
    return analyse("nb.ipynb", prelude_cells, parameters, specs)


def errors(steps: Mapping[str, Sequence[str]], **kwargs: Any) -> list[str]:
    with pytest.raises(AnalysisError) as info:
        run(steps, **kwargs)
    return [str(d) for d in info.value.diagnostics]


def step(analysis: Analysis, name: str) -> StepFlow:
    return analysis.step(name)


# -- plain data flow ---------------------------------------------------------------------------------------
def test_a_step_reads_what_an_earlier_step_defines_and_that_step_outputs_it() -> None:
    a = run({"load": ["xs = [1, 2, 3]\nunused = 0"], "train": ["total = sum(xs)"]})
    assert step(a, "load").outputs == ("xs",)
    assert step(a, "load").defines == ("unused", "xs")
    assert step(a, "train").reads == {"xs": "load"}
    assert step(a, "train").outputs == ()
    assert step(a, "train").sources == ((2, "total = sum(xs)\n"),)


def test_the_last_earlier_writer_provides_a_name() -> None:
    a = run({"a": ["x = 1"], "b": ["x = 2"], "c": ["y = x"]})
    assert step(a, "c").reads == {"x": "b"}
    assert step(a, "a").outputs == ()
    assert step(a, "b").outputs == ("x",)


def test_a_name_read_before_the_step_rebinds_it_comes_from_the_earlier_provider() -> None:
    a = run({"a": ["n = 1"], "b": ["print(n)\nn = 5\nm = n"], "c": ["k = n"]})
    assert step(a, "b").reads == {"n": "a"}
    assert step(a, "c").reads == {"n": "b"}


def test_a_name_bound_earlier_in_the_same_step_is_no_read() -> None:
    a = run({"a": ["x = 1"], "b": ["x = 2\ny = x + 1"]})
    assert step(a, "b").reads == {}
    assert step(a, "a").outputs == ()


def test_outputs_and_reads_are_sorted_and_deterministic() -> None:
    steps = {"a": ["zeta = 1\nalpha = 2\nmid = 3"], "b": ["print(zeta, mid, alpha)"]}
    first, second = run(steps), run(steps)
    assert first == second
    assert step(first, "a").outputs == ("alpha", "mid", "zeta")
    assert list(step(first, "b").reads) == ["alpha", "mid", "zeta"]


# -- in-place changes --------------------------------------------------------------------------------------
def test_a_method_call_changes_the_object_and_the_changing_step_becomes_its_provider() -> None:
    a = run({"load": ["xs = []"], "add": ["xs.append(1)"], "use": ["print(xs)"]})
    assert step(a, "add").reads == {"xs": "load"}
    assert step(a, "add").defines == ("xs",)
    assert step(a, "use").reads == {"xs": "add"}
    assert step(a, "load").outputs == ("xs",)
    assert step(a, "add").outputs == ("xs",)


def test_fitting_a_model_changes_it_but_predicting_does_not() -> None:
    a = run(
        {
            "load": ["X = [[1], [2]]\ny = [1, 2]\nmodel = LinearRegression()"],
            "train": ["model.fit(X, y)"],
            "evaluate": ["score = model.score(X, y)\npred = model.predict(X)"],
            "report": ["print(model)"],
        },
        prelude=["from sklearn.linear_model import LinearRegression"],
    )
    assert step(a, "train").defines == ("model",)
    assert step(a, "evaluate").reads == {"X": "load", "model": "train", "y": "load"}
    assert step(a, "evaluate").defines == ("pred", "score")
    assert step(a, "report").reads == {"model": "train"}


@pytest.mark.parametrize(
    "change",
    [
        'df["c"] = 1',
        "df.attr = 1",
        "df.loc[0, 'c'] = 1",
        "del df['c']",
        "df['c'] += 1",
        "df.a.b = 2",
        "df.columns.append('x')",
        "df.fillna(0, inplace=True)",
        "df2 = df\ndf2['c'] = 1",
        "df2 = df\ndf2 += [1]",
        "random.shuffle(df)",
    ],
)
def test_changes_in_place_make_the_step_the_provider(change: str) -> None:
    a = run(
        {"load": ["df = make()"], "clean": [change], "use": ["print(df)"]}, prelude=["import random, make"]
    )
    assert "df" in step(a, "clean").defines
    assert step(a, "clean").reads["df"] == "load"
    assert step(a, "use").reads == {"df": "clean"}


@pytest.mark.parametrize("call", ["df.head()", "df.describe()", "df.fillna(0)", "df.groupby('a').mean()"])
def test_non_mutating_methods_change_nothing(call: str) -> None:
    a = run({"load": ["df = make()"], "look": [call], "use": ["print(df)"]}, prelude=["from x import make"])
    assert step(a, "look").defines == ()
    assert step(a, "use").reads == {"df": "load"}


def test_calls_on_imported_modules_change_nothing() -> None:
    a = run(
        {"a": ["np.random.seed(0)\narr = np.zeros(3)\npd.options.display.max_rows = 5"], "b": ["np.ones(2)"]},
        prelude=["import numpy as np\nimport pandas as pd"],
    )
    assert step(a, "a").defines == ("<numpy.random>", "arr")  # the generator's state: nothing else
    assert step(a, "b").reads == {"np": "prelude"}


def test_calls_on_builtin_names_change_nothing() -> None:
    a = run({"a": ["d = dict.fromkeys('ab')\ns = str.upper('x')\nobject.__setattr__(d, 'x', 1)"]})
    assert step(a, "a").defines == ("d", "s")


def test_independent_branches_reading_the_same_input_do_not_depend_on_each_other() -> None:
    a = run(
        {
            "load": ["X = [[1], [2]]\ny = [1, 2]"],
            "train_a": ["model_a = Ridge()\nmodel_a.fit(X, y)"],
            "train_b": ["model_b = Lasso()\nmodel_b.fit(X, y)"],
            "compare": ["best = max(model_a.score(X, y), model_b.score(X, y))"],
        },
        prelude=["from sklearn.linear_model import Lasso, Ridge"],
    )
    assert step(a, "train_a").reads == {"Ridge": "prelude", "X": "load", "y": "load"}
    assert step(a, "train_b").reads == {"Lasso": "prelude", "X": "load", "y": "load"}
    assert step(a, "compare").reads == {"X": "load", "model_a": "train_a", "model_b": "train_b", "y": "load"}
    assert step(a, "train_a").outputs == ("model_a",)


# -- functions, lambdas, classes ---------------------------------------------------------------------------
def test_a_function_called_later_brings_the_globals_it_reads() -> None:
    a = run({"a": ["k = 3\ndef f(x):\n    return x * k"], "b": ["other = 1"], "c": ["y = f(2)"]})
    assert step(a, "c").reads == {"f": "a", "k": "a"}
    assert step(a, "a").outputs == ("f", "k")


def test_a_function_reads_the_current_value_of_its_globals() -> None:
    a = run({"a": ["k = 3\ndef f(x):\n    return x * k"], "b": ["k = 4"], "c": ["y = f(2)"]})
    assert step(a, "c").reads == {"f": "a", "k": "b"}


def test_function_globals_are_followed_transitively() -> None:
    a = run(
        {
            "a": ["base = 10\ndef inner():\n    return base"],
            "b": ["def outer():\n    return inner() + 1"],
            "c": ["print(outer())"],
        }
    )
    assert step(a, "c").reads == {"base": "a", "inner": "a", "outer": "b"}


def test_parameters_and_locals_of_a_function_are_not_reads() -> None:
    a = run(
        {
            "a": ["x = 1\ntotal = 2"],
            "b": [
                """
                def f(x, *args, key=None, **kw):
                    total = 0
                    for i in range(x):
                        total += i
                    return [j for j in args], total
                """
            ],
            "c": ["f(3)"],
        }
    )
    assert step(a, "c").reads == {"f": "b"}
    assert step(a, "a").outputs == ()


def test_a_lambda_across_steps_brings_its_globals() -> None:
    a = run({"a": ["k = 2\nscale = lambda v: v * k"], "b": ["r = scale(3)"]})
    assert step(a, "b").reads == {"k": "a", "scale": "a"}


def test_a_lambda_used_at_once_reads_its_globals_now() -> None:
    a = run({"a": ["k = 2\nrows = [1]"], "b": ["out = list(map(lambda r: r * k, rows))"]})
    assert step(a, "b").reads == {"k": "a", "rows": "a"}


def test_a_class_instantiated_and_used_later_brings_its_methods_globals() -> None:
    a = run(
        {
            "a": [
                """
                def helper(v):
                    return v + 1

                class Model:
                    factor = 2

                    def predict(self, v):
                        return helper(v) * self.factor
                """
            ],
            "b": ["m = Model()"],
            "c": ["print(m.predict(1))"],
        }
    )
    assert step(a, "b").reads == {"Model": "a", "helper": "a"}
    # the instance carries its class (notebook classes travel by value); its methods need `helper`
    assert step(a, "c").reads == {"helper": "a", "m": "b"}


def test_class_body_names_are_not_module_bindings_and_methods_cannot_see_them() -> None:
    a = run(
        {
            "a": ["factor = 5"],
            "b": ["class C:\n    factor = 2\n    size = factor * 2\n    def f(self):\n        return factor"],
            "c": ["C().f()"],
        }
    )
    assert step(a, "b").defines == ("C",)
    assert step(a, "b").reads == {}  # `size = factor * 2` reads C.factor; methods run only when called
    assert step(a, "c").reads == {"C": "b", "factor": "a"}


def test_decorators_defaults_and_base_classes_are_read_at_definition() -> None:
    a = run(
        {
            "a": ["deco = lambda f: f\nDEFAULT = 1\nclass Base:\n    pass"],
            "b": ["@deco\ndef f(x=DEFAULT):\n    return x\nclass Child(Base):\n    pass"],
        }
    )
    assert step(a, "b").reads == {"Base": "a", "DEFAULT": "a", "deco": "a"}


def test_dataclasses_and_annotations_work() -> None:
    a = run(
        {
            "a": [
                """
                from dataclasses import dataclass, field

                @dataclass
                class P:
                    x: int = 0
                    tags: list[str] = field(default_factory=list)
                """
            ],
            "b": ["p: P = P(1)"],
        }
    )
    assert step(a, "b").reads == {"P": "a"}


def test_an_unknown_name_in_an_annotation_is_no_error() -> None:
    a = run({"a": ["def f(x: 'Later') -> Undefined:\n    return x\nv: Other = 1"]})
    assert step(a, "a").defines == ("f", "v")


def test_a_global_statement_in_a_called_function_binds_at_module_level() -> None:
    a = run(
        {
            "a": ["def setup():\n    global g, h\n    g = 1\n    h += 1"],
            "b": ["setup()"],
            "c": ["print(g)"],
        }
    )
    assert step(a, "b").defines == ("g", "h")
    assert step(a, "c").reads == {"g": "b"}


def test_a_function_that_changes_a_global_changes_it_where_it_is_called() -> None:
    a = run({"a": ["log = []\ndef note(x):\n    log.append(x)"], "b": ["note(1)"], "c": ["print(log)"]})
    assert step(a, "b").reads == {"log": "a", "note": "a"}
    assert step(a, "c").reads == {"log": "b"}


def test_a_function_never_called_has_no_effect_and_unknown_globals_are_no_error() -> None:
    a = run({"a": ["def f():\n    return later_defined + g"], "b": ["g = 1"]})
    assert step(a, "a").reads == {}
    assert step(a, "b").reads == {}


def test_functions_defined_in_the_prelude_read_step_variables_where_called() -> None:
    a = run({"load": ["df = [1]"], "use": ["show()"]}, prelude=["def show():\n    print(df)"])
    assert step(a, "use").reads == {"df": "load", "show": "prelude"}


# -- control flow ------------------------------------------------------------------------------------------
def test_a_name_bound_on_one_branch_only_is_passed_on_from_the_earlier_provider() -> None:
    a = run({"a": ["x = 1\nflag = True"], "b": ["if flag:\n    x = 2"], "c": ["print(x)"]})
    assert step(a, "c").reads == {"x": "b"}
    assert step(a, "b").reads == {"flag": "a", "x": "a"}  # b may not rebind x: it hands on a's value
    assert step(a, "a").outputs == ("flag", "x")


def test_a_conditional_binding_counts_as_bound_after_the_if() -> None:
    a = run({"a": ["import os\nif os.name:\n    x = 1\nelse:\n    pass\nprint(x)"]})
    assert step(a, "a").defines == ("os", "x")


def test_a_name_bound_on_every_branch_is_bound() -> None:
    a = run({"a": ["x = 0"], "b": ["if True:\n    x = 1\nelse:\n    x = 2\nprint(x)"], "c": ["print(x)"]})
    assert step(a, "b").reads == {}
    assert step(a, "c").reads == {"x": "b"}


def test_a_loop_may_read_what_it_binds_later() -> None:
    a = run({"a": ["for i in range(3):\n    if i:\n        print(prev)\n    prev = i"]})
    assert step(a, "a").defines == ("i", "prev")


def test_try_except_import_fallbacks() -> None:
    a = run(
        {
            "a": ["try:\n    import ujson as json\nexcept ImportError:\n    import json"],
            "b": ["json.dumps({})"],
        }
    )
    assert step(a, "b").reads == {"json": "a"}


def test_with_for_except_match_and_walrus_bind() -> None:
    a = run(
        {
            "a": [
                """
                with open('f') as fh, open('g') as (gh):
                    pass
                for k, *rest in [(1, 2)]:
                    pass
                if (n := 10) > 5:
                    pass
                match n:
                    case {"a": va, **others}:
                        pass
                    case [first, *tail]:
                        pass
                    case Point(x=px) if px > 0:
                        pass
                    case other:
                        pass
                """
            ]
        },
        prelude=["Point = object"],
    )
    assert step(a, "a").defines == (
        "fh", "first", "gh", "k", "n", "other", "others", "px", "rest", "tail", "va"
    )  # fmt: skip
    assert step(a, "a").reads == {"Point": "prelude"}


def test_comprehension_variables_do_not_leak() -> None:
    found = errors({"a": ["squares = [i * i for i in range(3)]\nd = {k: v for k, v in []}\nprint(i)"]})
    assert found == ["nb.ipynb: cell 1, line 3: 'i' is read here but no earlier cell defines it"]


def test_a_comprehension_reads_its_iterable_and_conditions() -> None:
    a = run({"a": ["xs = [1]\nt = 0"], "b": ["ys = [x for x in xs if x > t]"]})
    assert step(a, "b").reads == {"t": "a", "xs": "a"}


# -- del ---------------------------------------------------------------------------------------------------
def test_del_removes_a_name_and_later_reads_are_errors() -> None:
    found = errors({"a": ["x = 1"], "b": ["del x"], "c": ["print(x)"]})
    assert found == ["nb.ipynb: cell 3, line 1: 'x' is read here but cell 2 deletes it"]


def test_del_then_read_in_the_same_step_is_an_error() -> None:
    found = errors({"a": ["x = 1\ndel x\nprint(x)"]})
    assert found == ["nb.ipynb: cell 1, line 3: 'x' is read here after `del x` removed it"]


def test_del_then_rebind_is_fine_and_del_reads_the_name() -> None:
    a = run({"a": ["x = 1"], "b": ["del x\nx = 2"], "c": ["print(x)"]})
    assert step(a, "b").reads == {"x": "a"}
    assert step(a, "c").reads == {"x": "b"}


# -- prelude, parameters, builtins, star imports -----------------------------------------------------------
def test_a_parameter_read_has_provider_parameter() -> None:
    a = run({"a": ["y = seed * 2"], "b": ["z = 1"]}, parameters=["seed", "unused"])
    assert step(a, "a").reads == {"seed": "parameter"}
    assert step(a, "b").reads == {}


def test_a_parameter_the_prelude_reads_is_read_by_every_step() -> None:
    a = run(
        {"a": ["x = 1"], "b": ["y = PATH"]},
        prelude=["import os\nROOT = os.path.join(data_dir, 'x')"],
        parameters=["data_dir", "PATH"],
    )
    assert step(a, "a").reads == {"data_dir": "parameter"}
    assert step(a, "b").reads == {"PATH": "parameter", "data_dir": "parameter"}


def test_a_prelude_name_rebound_in_a_step_is_then_provided_by_that_step() -> None:
    a = run({"a": ["print(LIMIT)"], "b": ["LIMIT = 5"], "c": ["print(LIMIT)"]}, prelude=["LIMIT = 3"])
    assert step(a, "a").reads == {"LIMIT": "prelude"}
    assert step(a, "c").reads == {"LIMIT": "b"}


def test_a_step_rebinding_a_parameter_provides_it_afterwards() -> None:
    a = run({"a": ["seed = seed + 1"], "b": ["print(seed)"]}, parameters=["seed"])
    assert step(a, "a").reads == {"seed": "parameter"}
    assert step(a, "b").reads == {"seed": "a"}


def test_builtins_are_neither_errors_nor_transfers_unless_rebound() -> None:
    a = run(
        {"a": ["print(len([1]), __name__)\ndisplay(1)"], "b": ["def print(*a):\n    pass"], "c": ["print(1)"]}
    )
    assert step(a, "a").reads == {}
    assert step(a, "c").reads == {"print": "b"}


def test_dunder_file_is_not_defined_in_a_notebook() -> None:
    assert errors({"a": ["print(__file__)"]}) == [
        "nb.ipynb: cell 1, line 1: '__file__' is read here but no earlier cell defines it"
    ]


def test_a_star_import_in_the_prelude_makes_unknown_names_no_error() -> None:
    a = run({"a": ["r = sqrt(2) + pi"]}, prelude=["from math import *"])
    assert step(a, "a").reads == {"pi": "prelude", "sqrt": "prelude"}


def test_a_star_import_in_a_step_hands_on_the_names_later_steps_use() -> None:
    a = run({"a": ["from math import *\nr = sqrt(2)"], "b": ["s = floor(2.5)"]})
    assert step(a, "a").reads == {}
    assert step(a, "b").reads == {"floor": "a"}
    assert step(a, "a").outputs == ("floor",)


# -- explicit inputs and outputs ---------------------------------------------------------------------------
def test_explicit_outputs_define_names_and_explicit_inputs_read_them() -> None:
    a = run(
        {"a": ["exec('made = 1')"], "b": ["print(globals()['made'])"]},
        inputs={"b": ["made"]},
        outputs={"a": ["made"]},
    )
    assert step(a, "a").outputs == ("made",)
    assert step(a, "a").defines == ("made",)
    assert step(a, "b").reads == {"made": "a"}


def test_explicit_outputs_satisfy_later_plain_reads() -> None:
    a = run({"a": ["exec('made = 1')"], "b": ["print(made)"]}, outputs={"a": ["made"]})
    assert step(a, "b").reads == {"made": "a"}


def test_an_explicit_input_nothing_defines_is_an_error_at_the_first_cell() -> None:
    found = errors({"a": ["x = 1"], "b": ["y = 2", "z = 3"]}, inputs={"b": ["ghost", "x"]})
    assert found == ["nb.ipynb: cell 2: inputs: no earlier cell defines 'ghost'"]


def test_explicit_names_must_be_python_names() -> None:
    found = errors({"a": ["x = 1"]}, outputs={"a": ["not-a-name", "class"]})
    assert found == [
        "nb.ipynb: cell 1: outputs: 'class' is not a Python variable name",
        "nb.ipynb: cell 1: outputs: 'not-a-name' is not a Python variable name",
    ]


def test_the_prelude_sources_are_part_of_the_analysis() -> None:
    a = run({"a": ["print(np)"]}, prelude=["%load_ext autoreload\nimport numpy as np"])
    assert a.prelude == ((1, "pass  # kale-yaml: left out: %load_ext autoreload\nimport numpy as np\n"),)
    assert [(w.cell, w.line) for w in a.warnings] == [(1, 1)]


# -- errors ------------------------------------------------------------------------------------------------
def test_a_step_cannot_be_named_like_a_provider() -> None:
    assert errors({"prelude": ["x = 1"]}) == ["nb.ipynb: cell 1: a step cannot be named 'prelude'"]


def test_an_undefined_name_is_reported_with_cell_and_line() -> None:
    found = errors({"a": ["x = 1"], "b": ["y = x", "z = 0\nprint(df.head())"]})
    assert found == ["nb.ipynb: cell 3, line 2: 'df' is read here but no earlier cell defines it"]


def test_every_undefined_name_is_reported_at_once() -> None:
    found = errors({"a": ["a1 = b1 + c1"], "b": ["print(d1)\nprint(b1)"]}, prelude=["p = q"])
    assert found == [
        "nb.ipynb: cell 1, line 1: 'q' is read here but no earlier cell defines it",
        "nb.ipynb: cell 2, line 1: 'b1' is read here but no earlier cell defines it",
        "nb.ipynb: cell 2, line 1: 'c1' is read here but no earlier cell defines it",
        "nb.ipynb: cell 3, line 1: 'd1' is read here but no earlier cell defines it",
        "nb.ipynb: cell 3, line 2: 'b1' is read here but no earlier cell defines it",
    ]


def test_a_name_defined_only_by_a_later_step_is_an_error() -> None:
    found = errors({"a": ["print(late)"], "b": ["late = 1"]})
    assert found == ["nb.ipynb: cell 1, line 1: 'late' is read here but no earlier cell defines it"]


def test_a_syntax_error_is_located_and_does_not_cascade() -> None:
    found = errors({"a": ["x = 1\ny = (\n"], "b": ["print(y)"]})
    assert len(found) == 1
    assert found[0].startswith("nb.ipynb: cell 1, line 2: ")


def test_ipython_help_syntax_gets_a_hint() -> None:
    found = errors({"a": ["len?"]})
    hint = "IPython help syntax like 'x?' cannot run in a pipeline step"
    assert found == [f"nb.ipynb: cell 1, line 1: syntax error: invalid syntax ({hint})"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\nreturn x", "'return' outside a function: a cell cannot return"),
        ("yield 1", "'yield' outside a function: a cell cannot yield"),
        ("break", "syntax error: 'break' outside loop"),
    ],
)
def test_code_a_cell_cannot_run_is_an_error(source: str, message: str) -> None:
    found = errors({"a": [source]})
    line = source.count("\n") + 1 if "return" in source else 1
    assert found == [f"nb.ipynb: cell 1, line {line}: {message}"]


def test_top_level_await_runs_as_in_ipython() -> None:
    a = run({"a": ["import asyncio\nresult = await asyncio.sleep(0, 5)"], "b": ["print(result)"]})
    assert step(a, "b").reads == {"result": "a"}


def test_await_inside_an_async_function_is_fine() -> None:
    a = run({"a": ["async def f():\n    await g()"]})
    assert step(a, "a").defines == ("f",)


# -- IPython -----------------------------------------------------------------------------------------------
def test_line_magics_and_shell_lines_are_left_out_with_line_numbers_kept() -> None:
    source = """\
%load_ext autoreload
import os
!pip install x
for i in range(2):
    %who
    !echo hi
print(i)
"""
    text, found = executable_source(cell(1, source))
    assert text == (
        """\
pass  # kale-yaml: left out: %load_ext autoreload
import os
pass  # kale-yaml: left out: !pip install x
for i in range(2):
    pass  # kale-yaml: left out: %who
    pass  # kale-yaml: left out: !echo hi
print(i)
"""
    )
    assert found == [
        "line magic '%load_ext autoreload' left out",
        "shell line '!pip install x' left out",
        "line magic '%who' left out",
        "shell line '!echo hi' left out",
    ]


def test_matplotlib_inline_is_honoured_without_a_warning() -> None:
    # A step keeps its figures as inline matplotlib does; another backend is left out with a warning.
    source = "%matplotlib inline\nif True:\n    %matplotlib  inline \n%matplotlib qt"
    text, found = executable_source(cell(1, source))
    assert text == (
        "pass  # kale-yaml: the step keeps figures as inline matplotlib does: %matplotlib inline\n"
        "if True:\n"
        "    pass  # kale-yaml: the step keeps figures as inline matplotlib does: %matplotlib  inline"
        "\npass  # kale-yaml: left out: %matplotlib qt\n"
    )
    assert found == ["line magic '%matplotlib qt' left out"]


def test_magic_warnings_reach_the_analysis_with_their_lines() -> None:
    a = run({"a": ["x = 1\n%load_ext autoreload"]})
    assert a.warnings == (
        Diagnostic(
            file="nb.ipynb",
            cell=1,
            line=2,
            message="line magic '%load_ext autoreload' left out",
            severity="warning",
            code="KY409",
        ),
    )
    assert step(a, "a").sources == ((1, "x = 1\npass  # kale-yaml: left out: %load_ext autoreload\n"),)


@pytest.mark.parametrize("magic", ["%%time", "%%capture", "%%capture out --no-stderr"])
def test_time_and_capture_cells_run_their_body(magic: str) -> None:
    a = run({"a": [f"{magic}\nx = 1"], "b": ["print(x)"]})
    assert step(a, "a").sources == ((1, f"pass  # kale-yaml: left out: {magic}\nx = 1\n"),)
    assert step(a, "b").reads == {"x": "a"}
    assert [w.line for w in a.warnings] == [1]


def test_percent_time_keeps_its_statement() -> None:
    text, found = executable_source(cell(1, "%time y = 2\n%timeit z = 3"))
    assert text == "y = 2\npass  # kale-yaml: left out: %timeit z = 3\n"
    assert found == [
        "line magic '%time' left out: 'y = 2' runs without timing",
        "line magic '%timeit z = 3' left out",
    ]


@pytest.mark.parametrize("magic", ["%%bash", "%%writefile -a out.txt", "%%html"])
def test_other_cell_magics_raise(magic: str) -> None:
    with pytest.raises(CellMagicError) as info:
        executable_source(cell(4, f"{magic}\necho hi"))
    assert info.value.cell_number == 4
    assert info.value.magic_name == magic.split()[0]


def test_a_cell_magic_is_an_analysis_error_and_does_not_cascade() -> None:
    found = errors({"a": ["%%bash\necho hi > x"], "b": ["print(anything)"]})
    assert found == [
        "nb.ipynb: cell 1, line 1: cell magic '%%bash' cannot run in a pipeline step: "
        "skip the cell or rewrite it"
    ]


def test_percent_lines_inside_strings_are_not_magics() -> None:
    source = 'q = """\n%s\n!x\n"""\n%load_ext x\ns = "%d" % 1\n'
    text, found = executable_source(cell(1, source))
    assert text == 'q = """\n%s\n!x\n"""\npass  # kale-yaml: left out: %load_ext x\ns = "%d" % 1\n'
    assert len(found) == 1
    unchanged = 'q = """\n%s\n"""\n'
    assert executable_source(cell(1, unchanged)) == (unchanged, [])


def test_a_shell_line_continued_with_a_backslash_is_left_out_whole() -> None:
    text, found = executable_source(cell(1, "if True:\n    !pip install \\\n        numpy\nx = 1"))
    assert text == (
        "if True:\n    pass  # kale-yaml: left out: !pip install \\\n"
        "    pass  # kale-yaml: left out: numpy\nx = 1\n"
    )
    assert len(found) == 1


def test_markdown_cells_execute_nothing() -> None:
    assert executable_source(cell(1, "# Title\n%not code", "markdown")) == ("", [])
    a = analyse("nb.ipynb", [], [], [("a", [cell(1, "# Title", "markdown"), cell(2, "x = 1")], None, None)])
    assert step(a, "a").sources == ((2, "x = 1\n"),)


# -- one cell on its own -----------------------------------------------------------------------------------
def test_cell_facts_lists_definitions_reads_and_changes() -> None:
    facts = cell_facts(cell(7, "import os\ny = x + 1\nitems.append(y)\nprint(len(items))"))
    assert facts.number == 7
    assert facts.defines == ("items", "os", "y")
    assert facts.reads == ("items", "x")
    assert facts.changes == ("items",)


def test_cell_facts_of_a_broken_cell_raise() -> None:
    with pytest.raises(AnalysisError):
        cell_facts(cell(1, "x = ("))


# -- properties --------------------------------------------------------------------------------------------
magic_lines = st.sampled_from(
    ["%matplotlib inline", "!ls", "x = 1", "    %who", "", "'''", "s = '%d' % 2", "#!x"]
)


@given(st.lists(magic_lines, max_size=12))
def test_executable_source_keeps_the_number_of_lines(lines: list[str]) -> None:
    source = "\n".join(lines)
    try:
        text, _ = executable_source(Cell(1, None, "code", source))
    except CellMagicError:  # pragma: no cover - no cell magic is generated
        raise
    assert len(text.splitlines()) == len(source.splitlines())


NAMES = ["a", "b", "c", "d"]
KINDS = ["assign", "append", "maybe", "call", "push", "set", "loop", "rebind"]
statements = st.tuples(st.sampled_from(KINDS), st.sampled_from(NAMES), st.sampled_from(NAMES))
PRELUDE = "\n".join(
    f"def get_{n}():\n    return {n} + [9]\ndef push_{n}(v):\n    {n}.append(v)\n"
    f"def set_{n}(v):\n    global {n}\n    {n} = v"
    for n in NAMES
)


def _source(kind: str, target: str, read: str) -> str:
    return {
        "assign": f"{target} = {read} + [{len(read)}]",
        "append": f"{target}.append(len({read}))",
        "maybe": f"if len({read}) % 2:\n    {target} = [len({read})]",
        "call": f"{target} = get_{read}()",
        "push": f"push_{target}(len({read}))",
        "set": f"set_{target}([len({read}), 1])",
        "loop": f"for _ in range(2):\n    {target}.append(len({read}))",
        "rebind": f"tmp = [len({read})]\ndel {target}\n{target} = tmp",
    }[kind]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.lists(st.lists(statements, min_size=1, max_size=3), min_size=1, max_size=2), min_size=1, max_size=5
    )
)
def test_the_pipeline_computes_what_the_notebook_computes(
    steps: list[list[list[tuple[str, str, str]]]],
) -> None:
    """Random steps of assignments, in-place changes, conditional assignments and calls of prelude functions
    that read, change or assign (`global`) list parameters.

    Each step runs alone on the prelude and its reads (deep copies of its providers' values); a last step
    reading every name must see what running all cells in one namespace gives.
    """
    sources = {
        f"s{i}": ["\n".join(_source(*stmt) for stmt in c) for c in cells] for i, cells in enumerate(steps)
    }
    sources["final"] = [f"final = [{', '.join(NAMES)}]"]
    analysis = run(sources, prelude=[PRELUDE], parameters=NAMES)
    parameters: dict[str, Any] = {name: [] for name in NAMES}

    notebook = copy.deepcopy(parameters)
    exec(PRELUDE, notebook)
    for cells in sources.values():
        for source in cells:
            exec(source, notebook)

    spaces: dict[str, dict[str, Any]] = {"parameter": parameters}
    for flow in analysis.steps:
        space: dict[str, Any] = {}
        exec(PRELUDE, space)
        for name, source in flow.reads.items():
            if source != "prelude":
                assert name in spaces[source], f"{source} does not have {name}"
                space[name] = copy.deepcopy(spaces[source][name])
        for _, source in flow.sources:
            exec(source, space)
        for name in flow.outputs:
            assert name in space, f"{flow.name} does not have its output {name}"
        spaces[flow.name] = space
    assert spaces["final"]["final"] == notebook["final"]
