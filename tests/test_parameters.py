"""Pipeline parameters reach a step exactly as the notebook wrote them, and what KFP cannot carry is a located
error before anything is built (issue 10: B14-B18, annotations, and a property test over generated values).

The real runs here go through kfp's local runner, as `kale-yaml run` does; they take a few seconds each, so
the property test checks many generated values against the validator and the encoding, and sends one batch
of them through a single real run.
"""

from __future__ import annotations

import json
import math
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError
from kale_yaml.render import pyliteral
from kale_yaml.resolve.model import ParameterValue
from kale_yaml.resolve.parameters import (
    MAX_EXACT_INT,
    encode,
    parse_params,
    pipeline_arguments,
    value_problem,
)
from kale_yaml.run.local import RunOptions, run_local
from kale_yaml.runtime import marshal

B14_CELL = 'sizes = [2, 3]\ncfg = {"a": 1, "b": [1.5, None, True, "x"]}\nn = 3\nrate = 0.5'
B14_STEP = "r = list(range(sizes[0]))\nseen = {'sizes': sizes, 'cfg': cfg, 'r': r, 'n': n, 'rate': rate}"


def write_project(
    folder: Path, parameter_cell: str, step_cell: str, *, outputs: tuple[str, ...] = ("seen",)
) -> Path:
    """A notebook [markdown, parameter cell, step cell] and its sidecar: one step that hands on `outputs`."""
    folder.mkdir(parents=True, exist_ok=True)
    code: dict[str, Any] = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    cells = [
        {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": "# T"},
        {**code, "id": "c2", "source": parameter_cell},
        {**code, "id": "c3", "source": step_cell},
    ]
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (folder / "nb.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    sidecar = {
        "version": 1,
        "notebook": "nb.ipynb",
        "pipeline": {"name": "t"},
        "parameters": {"cells": 2},
        "steps": [{"name": "s1", "cells": 3, "outputs": list(outputs)}],
    }
    (folder / "pipeline.kale.yaml").write_text(yaml.safe_dump(sidecar, sort_keys=False), encoding="utf-8")
    return folder


def typed(value: Any) -> Any:
    """`value` with the type of every part spelled out, so `1 == 1.0` and `True == 1` compare unequal."""
    if isinstance(value, list):
        return ["list", [typed(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[k, typed(v)] for k, v in value.items()]]
    if isinstance(value, float):
        return ["float", repr(value)]  # repr: -0.0 is not 0.0
    return [type(value).__name__, value]


def run_and_load(folder: Path, params: dict[str, str] | None = None) -> Any:
    """Really run the pipeline; the value step s1 handed on as `seen`."""
    result = run_local(api.validate(folder), RunOptions(params=params or {}, use_cache=False))
    assert result.failure is None, str(result.failure)
    (artifact,) = result.run_dir.glob("artifacts/*/s1-step/out_seen")
    return marshal.load_value(str(artifact))


# B14: lists and dicts travel as JSON text, so ints stay ints (KFP's LIST/STRUCT would make them doubles).


@pytest.mark.parametrize(
    ("params", "sizes"),
    [({}, [2, 3]), ({"sizes": "[4,5]"}, [4, 5])],
    ids=["defaults", "param-override"],
)
def test_list_and_dict_parameters_reach_the_step_with_the_notebooks_values_and_types(
    params: dict[str, str], sizes: list[int], tmp_path: Path
) -> None:
    folder = write_project(tmp_path / "b14", B14_CELL, B14_STEP)

    seen = run_and_load(folder, params)

    expected = {
        "sizes": sizes,
        "cfg": {"a": 1, "b": [1.5, None, True, "x"]},
        "r": list(range(sizes[0])),
        "n": 3,
        "rate": 0.5,
    }
    assert typed(seen) == typed(expected)


def test_list_and_dict_parameters_compile_as_strings_holding_their_json(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "b14", B14_CELL, B14_STEP)

    built = api.build(folder)

    spec = yaml.safe_load(built.yaml_path.read_text(encoding="utf-8"))
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared["sizes"] == {"defaultValue": "[2, 3]", "isOptional": True, "parameterType": "STRING"}
    assert declared["cfg"]["parameterType"] == "STRING"
    assert json.loads(declared["cfg"]["defaultValue"]) == {"a": 1, "b": [1.5, None, True, "x"]}
    assert declared["n"]["parameterType"] == "NUMBER_INTEGER"
    assert declared["rate"]["parameterType"] == "NUMBER_DOUBLE"
    source = built.python_path.read_text(encoding="utf-8")
    assert "    sizes: str = '[2, 3]',\n" in source
    assert "import json as _json" in source
    assert "parameters={'cfg': _json.loads(cfg), 'n': n, 'rate': rate, 'sizes': _json.loads(sizes)}" in source


# B15, B16: `--param` values KFP cannot carry are clear errors before anything runs.

BAD_PARAMS = {
    "nan": {"rate": "nan"},
    "inf": {"rate": "inf"},
    "minus-inf": {"rate": "-inf"},
    "overflow": {"rate": "1e400"},
    "list-nan": {"sizes": "[1, NaN]"},
    "list-infinity": {"sizes": "[-Infinity]"},
    "list-overflow": {"sizes": "[1, 1e400]"},
    "dict-nan": {"cfg": '{"a": {"b": NaN}}'},
    "int-beyond-2-53": {"n": "99999999999999999999999"},
    "int-below-minus-2-53": {"n": "-9007199254740993"},
    "lone-surrogate": {"label": "a\udcff"},  # what Python makes of a non-UTF-8 byte in argv
    "json-too-deep": {"sizes": "[" * 5000 + "]" * 5000},
}


@pytest.fixture
def b14_project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "b14", B14_CELL + "\nlabel = 'x'", B14_STEP)


@pytest.mark.parametrize("params", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_a_param_kfp_cannot_carry_is_a_clear_error(
    params: dict[str, str], b14_project: Path, snapshot: SnapshotAssertion
) -> None:
    declared = api.validate(b14_project).config.parameters
    with pytest.raises(KaleYamlError) as caught:
        parse_params(declared, params)
    assert str(caught.value) == snapshot


def test_bad_params_exit_one_with_every_message_and_no_traceback(
    b14_project: Path, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    arguments = ["--param=rate=nan", "--param=sizes=[1, NaN]", "--param=n=99999999999999999999999"]

    assert main(["run", str(b14_project), *arguments]) == 1

    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err == snapshot
    assert not (b14_project / ".kale" / "runs").exists()


def test_a_param_at_the_edge_of_what_kfp_carries_is_accepted(b14_project: Path) -> None:
    declared = api.validate(b14_project).config.parameters
    values = parse_params(
        declared,
        {"n": str(-MAX_EXACT_INT), "rate": "1.7976931348623157e308", "sizes": f"[{10**30}, null]"},
    )
    assert values == {"n": -MAX_EXACT_INT, "rate": 1.7976931348623157e308, "sizes": [10**30, None]}


def test_run_arguments_carry_lists_and_dicts_as_json_text_and_the_rest_as_they_are() -> None:
    values: dict[str, ParameterValue] = {
        "sizes": [2, 3],
        "cfg": {"ü": [1.5, None, 10**30]},
        "n": 3,
        "rate": 0.5,
        "on": True,
        "s": "x",
    }

    arguments = pipeline_arguments(values)

    assert arguments == {
        "sizes": "[2, 3]",
        "cfg": '{"ü": [1.5, null, 1000000000000000000000000000000]}',
        "n": 3,
        "rate": 0.5,
        "on": True,
        "s": "x",
    }


# Whatever validate accepts, build compiles: every kind of value a parameter may hold, from cells and sidecar.

ALLOWED = {
    "flag": True,
    "off": False,
    "zero": 0,
    "big": MAX_EXACT_INT,
    "low": -MAX_EXACT_INT,
    "rate": 0.5,
    "negative_zero": -0.0,
    "huge": 1.7976931348623157e308,
    "tiny": 5e-324,
    "empty": "",
    "text": "ünïcode 漢字 😀 \u2028 'quotes' \"double\" \\ {{ $ }} \n\t\r\x00\x7f",
    "no_items": [],
    "no_keys": {},
    "mixed": [1, 2.5, True, None, "s", [10**40, -(10**20)], {"k": [None]}],
    "nested": {"a": {"b": {"c": [1, {"d": None}]}}, "ü": -0.0, "": 0},
    "deep": [[[[[[[[[[1]]]]]]]]]],
}


def test_every_kind_of_value_validate_accepts_compiles_and_reaches_the_step_exactly(tmp_path: Path) -> None:
    half = list(ALLOWED.items())[: len(ALLOWED) // 2]
    rest = dict(list(ALLOWED.items())[len(ALLOWED) // 2 :])
    cell = "\n".join(f"{name} = {pyliteral.literal(value)}" for name, value in half)
    folder = write_project(tmp_path / "kinds", cell, f"seen = [{', '.join(ALLOWED)}]")
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    data["parameters"]["values"] = rest
    sidecar.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    built = api.build(folder)

    assert {p.name: p.default for p in built.project.config.parameters} == ALLOWED
    spec = yaml.safe_load(built.yaml_path.read_text(encoding="utf-8"))
    declared = spec["root"]["inputDefinitions"]["parameters"]
    kinds = {"bool": "BOOLEAN", "int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "str": "STRING"}
    for name, value in ALLOWED.items():
        default = declared[name]["defaultValue"]
        if isinstance(value, list | dict):
            assert declared[name]["parameterType"] == "STRING"
            assert typed(json.loads(default)) == typed(value), name
        else:  # KFP writes every number as a double; its type says how a step receives it
            assert declared[name]["parameterType"] == kinds[type(value).__name__]
            assert default == value, name
            if isinstance(value, float):
                assert repr(float(default)) == repr(value), name
    assert typed(run_and_load(folder)) == typed(list(ALLOWED.values()))


# Defaults that disagree with their annotation, or that KFP cannot carry, are located validate errors; the
# invalid case folders tests/cases/invalid/params_* hold one each, snapshotted by test_cases.py.


def test_parameter_cell_that_python_cannot_build_is_a_located_error(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "b17", "x = {[1]: 2}", "seen = x")
    with pytest.raises(KaleYamlError) as caught:
        api.validate(folder)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.cell, diagnostic.line) == (2, 1)
    assert "unhashable type: 'list'" in diagnostic.message


# The property: a generated parameter cell either validates, builds and round-trips with equal values and
# types, or is a located validate error.

KEYS = st.one_of(st.text(max_size=8), st.sampled_from(["k\udcff", "\ud800"]), st.integers(-3, 3))
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "x\udfff"]),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        st.tuples(children),
    ),
    max_leaves=12,
)


def source_of(value: Any) -> str | None:
    """The value as a literal in a cell; None for nan, which no literal spells."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "1e400" if value > 0 else "-1e400"
    if isinstance(value, list):
        items = [source_of(v) for v in value]
        return None if None in items else "[" + ", ".join(str(i) for i in items) + "]"
    if isinstance(value, tuple):
        items = [source_of(v) for v in value]
        return None if None in items else "(" + "".join(f"{i}, " for i in items) + ")"
    if isinstance(value, dict):
        pairs = [(source_of(k), source_of(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return repr(value)


def carried(value: Any, depth: int = 0) -> bool:
    """The rule, written independently of kale_yaml.resolve.parameters: what a parameter may hold."""
    if value is None:
        return depth > 0
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_EXACT_INT or depth > 0
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list) and depth < 100:
        return all(carried(v, depth + 1) for v in value)
    if isinstance(value, dict) and depth < 100:
        return all(isinstance(k, str) and carried(k, 1) and carried(v, depth + 1) for k, v in value.items())
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_generated_parameter_cells_validate_exactly_or_fail_located(value: Any) -> None:
    literal = source_of(value)
    if literal is None:
        assert value_problem(value) is not None
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_project(Path(tmp), f"x = {literal}", "seen = x")
        try:
            project = api.validate(folder)
        except KaleYamlError as error:
            assert not carried(value), str(error)
            assert all((d.cell, d.line) == (2, 1) for d in error.diagnostics), str(error)
            return
    assert carried(value)
    (parameter,) = project.config.parameters
    assert typed(parameter.default) == typed(value)
    sent = encode(parameter.default)
    received = json.loads(sent) if isinstance(sent, str) and isinstance(value, list | dict) else sent
    assert typed(received) == typed(value)


# Values a parameter may hold (the property test above covers the others); printable text keeps a failing
# batch readable, and the checks above cover every character.
BATCH_TEXT = st.text(string.printable + "üé漢😀", max_size=10)
BATCH_ITEMS = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), BATCH_TEXT
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)
BATCH_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-MAX_EXACT_INT, max_value=MAX_EXACT_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    BATCH_TEXT,
    st.lists(BATCH_ITEMS, max_size=4),
    st.dictionaries(st.text(max_size=6), BATCH_ITEMS, max_size=4),
)


# No shrinking: each attempt would be another real run; a failing batch is reported as drawn.
@settings(
    max_examples=1,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(BATCH_VALUES, min_size=24, max_size=24))
def test_a_batch_of_generated_parameters_round_trips_through_one_real_run(values: list[Any]) -> None:
    # Hypothesis tries the simplest batch first (24 times False): ask for a varied one.
    assume(len({json.dumps(typed(v)) for v in values}) >= 16)
    assert all(carried(v) for v in values)
    names = [f"p{i}" for i in range(len(values))]
    cell = "\n".join(f"{name} = {source_of(v)}" for name, v in zip(names, values, strict=True))
    # Every other parameter is overridden with its own value as `--param` text: both ways must be exact.
    params = {name: param_text(v) for name, v in list(zip(names, values, strict=True))[1::2]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_project(Path(tmp), cell, f"seen = [{', '.join(names)}]")
        api.build(folder)
        seen = run_and_load(folder, params)
    assert typed(seen) == typed(values)


def param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value) if isinstance(value, str) else repr(value)
