"""Process state that is not a variable travels too: imports and settings are replayed at the start of later
steps, a global random generator's state is handed on as data, and what cannot travel is a located warning."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kale_yaml import api
from kale_yaml.analysis.steps import executable_source
from kale_yaml.cli.main import main
from kale_yaml.load.cells import Cell
from kale_yaml.plan.graph import graph_text
from kale_yaml.runtime.generators import restore_generator, save_generator
from tests.conftest import CASES
from tests.test_analysis import run, step

SEEDED = CASES / "valid" / "seeded_generators"
SETTINGS = CASES / "valid" / "process_settings"


# -- imports (item 7) --------------------------------------------------------------------------------------
def test_an_import_is_replayed_in_the_step_that_reads_it_not_shipped() -> None:
    a = run({"load": ["import numpy as np\nxs = np.arange(3)"], "use": ["ys = np.asarray(xs) * 2"]})
    assert step(a, "use").reads == {"xs": "load"}
    assert step(a, "use").replay == ((1, "import numpy as np"),)
    assert step(a, "load").outputs == ("xs",)


def test_only_the_imported_name_read_is_replayed() -> None:
    a = run({"load": ["from math import pi, sqrt\nimport os.path"], "use": ["r = sqrt(2)\nb = os.path.sep"]})
    assert step(a, "use").replay == ((1, "from math import sqrt"), (1, "import os.path"))
    assert step(a, "use").reads == {}


def test_a_name_rebound_after_its_import_travels_as_a_value() -> None:
    a = run({"load": ["from math import pi\npi = round(pi, 2)"], "use": ["r = pi * 2"]})
    assert step(a, "use").reads == {"pi": "load"}
    assert step(a, "use").replay == ()


def test_an_import_inside_a_block_travels_as_before() -> None:
    a = run({"load": ["try:\n    import json\nexcept ImportError:\n    json = None"], "use": ["j = json"]})
    assert step(a, "use").reads == {"json": "load"}


def test_the_graph_shows_no_edge_for_a_replayed_import() -> None:
    pipeline = api.validate(CASES / "valid" / "imports_replayed").pipeline
    assert {(e.source, e.target): e.variables for e in pipeline.edges} == {
        ("load", "stats"): ("values",),
        ("stats", "report"): ("avg",),
    }


# -- settings (items 1, 3, 4) ------------------------------------------------------------------------------
def test_settings_are_replayed_in_later_steps_in_notebook_order_with_the_imports_they_read() -> None:
    a = run(
        {
            "configure": ["import os\nimport pandas as pd\npd.set_option('display.precision', 2)"],
            "env": ["os.environ['A'] = '1'\nx = 1"],
            "last": ["y = x"],
        }
    )
    assert step(a, "configure").sets == ((1, "pandas option"),)
    assert step(a, "env").replay == (
        (1, "import os"),  # read by the step itself
        (1, "import pandas as pd"),
        (1, "pd.set_option('display.precision', 2)"),
    )
    assert step(a, "last").replay == (
        (1, "import os"),
        (1, "import pandas as pd"),
        (1, "pd.set_option('display.precision', 2)"),
        (2, "os.environ['A'] = '1'"),
    )


def test_a_setting_that_reads_a_variable_is_not_replayed_and_says_where() -> None:
    a = run({"a": ["import numpy as np\nn = 3\nnp.set_printoptions(precision=n)"], "b": ["m = 1"]})
    assert step(a, "b").replay == ()
    assert [str(w) for w in a.warnings] == [
        "nb.ipynb: cell 1, line 3: the numpy print options set here is not re-applied in later steps:"
        " it reads 'n', which later steps do not have at their start"
    ]
    assert a.warnings[0].code == "KY420"


def test_a_setting_that_reads_a_parameter_is_replayed_with_the_parameter() -> None:
    a = run(
        {"a": ["import random\nimport os\nos.environ['SEED'] = str(seed)"], "b": ["m = 1"]},
        parameters=["seed"],
    )
    assert step(a, "b").reads == {"seed": "parameter"}
    assert step(a, "b").replay[-1] == (1, "os.environ['SEED'] = str(seed)")


def test_a_setting_inside_a_block_is_a_located_warning() -> None:
    a = run({"a": ["import os\nif True:\n    os.chdir('/')"], "b": ["m = 1"]})
    assert step(a, "b").replay == ()
    assert [(w.cell, w.line, w.code) for w in a.warnings] == [(1, 3, "KY420")]
    assert "working directory" in a.warnings[0].message


def test_a_setting_inside_a_function_runs_where_it_is_called_and_is_no_warning() -> None:
    a = run({"a": ["import os\ndef go():\n    os.chdir('/')"], "b": ["go()"]})
    assert a.warnings == ()


def test_settings_of_the_last_step_warn_about_nothing() -> None:
    a = run({"a": ["m = 1"], "b": ["import numpy as np\nn = 3\nnp.set_printoptions(precision=n)"]})
    assert a.warnings == ()


def test_a_setting_in_a_time_cell_is_found() -> None:
    a = run({"a": ["%%time\nimport warnings\nwarnings.simplefilter('ignore')"], "b": ["m = 1"]})
    assert step(a, "a").sets == ((1, "warnings filter"),)
    assert step(a, "b").replay == ((1, "import warnings"), (1, "warnings.simplefilter('ignore')"))


def test_names_that_are_not_imports_are_never_setters() -> None:
    a = run({"a": ["class O:\n    def set_config(self, **k): pass\nsklearn = O()\nsklearn.set_config(a=1)"],
             "b": ["m = sklearn"]})  # fmt: skip
    assert step(a, "a").sets == ()


# -- random generators (item 2) ----------------------------------------------------------------------------
def test_a_seeded_generator_orders_the_steps_that_draw_and_leaves_the_others_parallel() -> None:
    upstream = {s.name: s.upstream for s in api.validate(SEEDED).pipeline.steps}
    assert upstream == {
        "seed": (),
        "branch": ("seed",),
        "draw": ("seed",),
        "build": ("seed", "draw"),  # seed: the function `noise`, which draws where build calls it
        "fit": ("draw", "build"),
    }
    edges = {(e.source, e.target): e.variables for e in api.validate(SEEDED).pipeline.edges}
    assert edges[("seed", "draw")] == ("<numpy.random>", "<random>")
    assert edges[("seed", "branch")] == ("base",)


def test_graph_says_a_generator_state_travels() -> None:
    text = graph_text(api.validate(SEEDED).pipeline)
    assert "  seed -> draw: <numpy.random>, <random>" in text
    assert "a global random generator's state" in text


def test_a_step_that_seeds_before_drawing_reads_no_state() -> None:
    a = run({"a": ["import random\nx = random.random()"], "b": ["random.seed(1)\ny = random.random()"]})
    assert step(a, "b").reads == {}
    assert step(a, "a").outputs == ()


def test_an_estimator_without_random_state_draws_where_it_is_fitted() -> None:
    prelude = ["from sklearn.ensemble import RandomForestClassifier\nimport numpy as np"]
    a = run(
        {
            "seed": ["np.random.seed(0)"],
            "build": ["free = RandomForestClassifier()\nfixed = RandomForestClassifier(random_state=1)"],
            "fit_fixed": ["fixed.fit([[1]], [1])"],
            "fit_free": ["free.fit([[1]], [1])"],
        },
        prelude=prelude,
    )
    assert "<numpy.random>" not in step(a, "fit_fixed").reads
    assert step(a, "fit_free").reads["<numpy.random>"] == "build"


def test_numpy_generator_objects_are_not_the_global_state() -> None:
    a = run(
        {
            "a": ["import numpy as np\nnp.random.seed(1)"],
            "b": ["g = np.random.default_rng(3)\nv = g.random()"],
        }
    )
    assert "<numpy.random>" not in step(a, "b").reads


def test_generator_state_survives_a_round_trip(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    random.seed(5)
    np.random.seed(5)
    save_generator("<random>", str(tmp_path / "r"))
    save_generator("<numpy.random>", str(tmp_path / "n"))
    expected = (random.random(), np.random.rand())
    random.seed(0)
    np.random.seed(0)
    restore_generator("<random>", str(tmp_path / "r"))
    restore_generator("<numpy.random>", str(tmp_path / "n"))
    assert (random.random(), np.random.rand()) == expected


# -- cell magics (item 6) ----------------------------------------------------------------------------------
def test_timeit_cell_is_left_out_with_a_warning() -> None:
    source, found = executable_source(Cell(1, None, "code", "%%timeit\nx = sum(range(10))\n"))
    assert (
        source == "pass  # kale-yaml: left out: %%timeit\npass  # kale-yaml: left out: x = sum(range(10))\n"
    )
    assert "leaves nothing behind" in found[0]
    a = run({"a": ["%%timeit\nx = 1"], "b": ["y = 2"]})
    assert step(a, "a").defines == ()


def test_writefile_cell_writes_its_body_and_later_steps_write_it_again(tmp_path: Path) -> None:
    cell = Cell(1, None, "code", "%%writefile 'mod.py'\ndef f():\n    return 1")
    source, found = executable_source(cell)
    assert found == []
    assert source.splitlines()[1:] == ["# def f():", "#     return 1"]
    namespace: dict[str, object] = {}
    (tmp_path / "sub").mkdir()
    exec(source.replace("'mod.py'", repr(str(tmp_path / "mod.py"))), namespace)
    assert (tmp_path / "mod.py").read_text(encoding="utf-8") == "def f():\n    return 1\n"
    a = run({"a": ["%%writefile mod.py\nX = 1"], "b": ["import mod\ny = mod.X"]})
    assert step(a, "a").sets == ((1, "file mod.py"),)
    replayed = step(a, "b").replay[0][1]
    assert "(__import__('pathlib').Path('mod.py'), 'X = 1\\n')" in replayed


def test_a_replayed_writefile_leaves_an_identical_file_untouched(tmp_path: Path) -> None:
    # Parallel local steps replay it in one shared folder: an identical file is not rewritten, so no step can
    # read it half-written while another writes it.
    source, _ = executable_source(Cell(1, None, "code", "%%writefile mod.py\nX = 1"))
    target = tmp_path / "mod.py"
    exec(source.replace("'mod.py'", repr(str(target))), {})
    before = target.stat()
    exec(source.replace("'mod.py'", repr(str(target))), {})
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    target.write_text("X = 2\n", encoding="utf-8")
    exec(source.replace("'mod.py'", repr(str(target))), {})
    assert target.read_text(encoding="utf-8") == "X = 1\n"


def test_the_settings_case_lists_what_each_step_sets() -> None:
    text = graph_text(api.validate(SETTINGS).pipeline)
    assert "process state set again at the start of every later step:" in text
    assert "  move: sys.path (cell 4), working directory (cell 4)" in text


def test_cells_lists_the_process_state_each_cell_sets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cells", str(SETTINGS)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "process state, set again in later steps: cell 2: scikit-learn config, pandas option, environment"
        " variable, numpy print options, warnings filter; cell 3: file helper_mod.py; cell 4: sys.path,"
        " working directory"
    ) in out
    assert main(["cells", str(SEEDED)]) == 0
    assert "cell 2: numpy.random seed, random seed" in " ".join(capsys.readouterr().out.split())


def test_torch_generator_is_followed_by_name_without_torch_installed() -> None:
    a = run(
        {
            "seed": ["import torch\ntorch.manual_seed(0)"],
            "other": ["n = 1"],
            "draw": ["t = torch.rand(3)\nlayer = torch.nn.Linear(2, 2)"],
        }
    )
    assert step(a, "draw").reads == {"<torch>": "seed"}
    assert step(a, "other").reads == {}


def test_an_estimator_passed_to_a_function_draws_there() -> None:
    prelude = [
        "import numpy as np\nfrom sklearn.cluster import KMeans",
        "from sklearn.model_selection import cross_val_score",
    ]
    a = run(
        {"build": ["np.random.seed(0)\nkm = KMeans(3)"], "score": ["s = cross_val_score(km, [[1]], [1])"]},
        prelude=prelude,
    )
    assert step(a, "score").reads["<numpy.random>"] == "build"


def test_a_function_that_draws_draws_where_it_is_called() -> None:
    a = run(
        {
            "seed": ["import numpy as np\nnp.random.seed(0)\ndef noise(n):\n    return np.random.rand(n)"],
            "other": ["m = 1"],
            "use": ["x = noise(3)"],
        }
    )
    assert step(a, "use").reads == {"<numpy.random>": "seed", "noise": "seed"}
    assert step(a, "other").reads == {}


SETTERS = [
    "pd.set_option('display.max_rows', 5)",
    "np.set_printoptions(precision=3)",
    "os.environ['K'] = 'v'",
    "warnings.simplefilter('ignore')",
    "sys.path.append('lib')",
]


@given(st.lists(st.lists(st.sampled_from(SETTERS), max_size=3), min_size=1, max_size=5))
@settings(max_examples=60, deadline=None)
def test_every_earlier_setting_is_replayed_once_in_notebook_order(steps: list[list[str]]) -> None:
    imports = "import os\nimport sys\nimport warnings\nimport numpy as np\nimport pandas as pd"
    cells = {f"s{i}": ["\n".join([*setters, f"v{i} = {i}"])] for i, setters in enumerate(steps)}
    a = run({**cells, "last": ["done = 1"]}, prelude=[imports])
    replayed = [source for _cell, source in step(a, "last").replay]
    assert replayed == [setter for setters in steps for setter in setters]
    assert a.warnings == ()


def test_file_is_an_alias_of_writefile_and_a_home_path_is_expanded_where_it_runs() -> None:
    source, _ = executable_source(Cell(1, None, "code", "%%file ~/notes.txt\nhello"))
    first = source.splitlines()[0]
    assert "(__import__('pathlib').Path('~/notes.txt').expanduser(), 'hello\\n')" in first
    assert first.endswith("  # kale-yaml: %%file ~/notes.txt")
