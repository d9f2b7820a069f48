"""A step that exits, dies, is killed or is stopped: `kale-yaml run` names the step and the cell, says how it
ended, leaves no cache entry for it, and leaves no step process behind. Real runs, through the CLI.

The notebook is the issue's *base3*: [markdown, `a = 1`, PROBE + `b = a + 1`, `print(b)`], steps s1..s3 are
cells 2..4, so every probe runs in step s2, cell 3.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import BuildError
from kale_yaml.render import limits
from kale_yaml.render.compile import compile_source
from kale_yaml.render.generate import render
from tests.conftest import REPO

SIDECAR = """\
version: 1
notebook: nb.ipynb
pipeline: {name: t}
steps:
  - {name: s1, cells: 2}
  - {name: s2, cells: 3}
  - {name: s3, cells: 4}
"""


def base3(folder: Path, probe: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# T"),
        nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_code_cell(textwrap.dedent(probe).strip() + "\nb = a + 1"),
        nbformat.v4.new_code_cell("print(b)"),
    ]
    nbformat.write(notebook, folder / "nb.ipynb")
    (folder / "pipeline.kale.yaml").write_text(SIDECAR, encoding="utf-8")
    return folder


def run(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["run", str(folder), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def step_line(out: str, step: str) -> str:
    """The step's row of the steps table."""
    return next(line for line in out.splitlines() if line.startswith(f"│ {step} "))


@pytest.mark.parametrize(
    ("probe", "how"),
    [
        ("import sys\nsys.exit(3)", "SystemExit: 3"),
        ("import os\nos._exit(1)", "ended during this cell without finishing: exit code 1"),
        (
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
            "ended during this cell without finishing: killed by signal SIGKILL",
        ),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ],
    ids=["sys.exit(3)", "os._exit(1)", "SIGKILL", "KeyboardInterrupt"],
)
def test_a_step_that_exits_or_dies_names_step_cell_and_how_it_ended(
    probe: str, how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(base3(tmp_path / "nb", probe), capsys)
    assert code == 1
    assert "nb.ipynb: cell 3" in err
    assert "step 's2'" in err
    assert how in err
    assert "before a step's cells ran" not in err
    assert "failed" in step_line(out, "s2")
    assert "not run" in step_line(out, "s3")


def test_clearing_the_environment_does_not_silence_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(base3(tmp_path / "nb", "import os\nos.environ.clear()"), capsys)
    assert code == 0, err
    assert "done" in step_line(out, "s2")
    assert "done" in step_line(out, "s3")


def test_a_cell_that_clears_the_environment_and_fails_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = """\
    import os, sys
    os.environ.clear()
    os.chdir("/")
    sys.stdout = sys.stderr = open(os.devnull, "w")
    1 / 0
    """
    code, _, err = run(base3(tmp_path / "nb", probe), capsys)
    assert code == 1
    assert "nb.ipynb: cell 3, line 5: step 's2' failed: ZeroDivisionError: division by zero" in err


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)"])
def test_a_step_that_exits_zero_early_fails_and_leaves_no_cache_entry(
    exit_call: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "FLAG"
    flag.touch()
    folder = base3(tmp_path / "nb", f"import os, sys\nif os.path.exists({str(flag)!r}): {exit_call}")
    code, out, err = run(folder, capsys)
    assert code == 1
    assert "nb.ipynb: cell 3" in err
    assert "step 's2'" in err
    assert "Tried to get output" not in err + out
    assert "failed" in step_line(out, "s2")

    flag.unlink()
    code, out, err = run(folder, capsys)  # the cache is on: s2 must run, not come from the cache
    assert code == 0, err
    assert "cached" in step_line(out, "s1")
    assert "done" in step_line(out, "s2")
    assert "done" in step_line(out, "s3")


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (nobody may reap an orphan in a container)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rpartition(")")[2].split()[0] != "Z"
        except FileNotFoundError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
def test_stopping_the_run_stops_its_step_and_names_it(signum: int, status: int, tmp_path: Path) -> None:
    pid_file = tmp_path / "step.pid"
    probe = f"""\
    import os, pathlib, time
    pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
    time.sleep(120)
    """
    folder = base3(tmp_path / "nb", probe)
    command = [sys.executable, "-m", "kale_yaml", "run", str(folder)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as run:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        step_pid = int(pid_file.read_text())
        run.send_signal(signum)  # to `kale-yaml` alone, not to its process group
        out, err = run.communicate(timeout=30)
    assert run.returncode == status, out + err
    name = signal.Signals(signum).name
    assert f"nb.ipynb: cell 3: the run was stopped by {name} while step 's2' ran; the step was stopped" in err
    assert "interrupted" in step_line(out, "s2")
    deadline = time.monotonic() + 10
    while _alive(step_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(step_pid)


def test_a_cache_entry_without_the_outputs_names_the_step_and_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = base3(tmp_path / "nb", "pass")
    assert run(folder, capsys, "--runner", "kfp")[0] == 0
    cache = folder / ".kale" / "kfp-cache"
    entries = [entry for entry in cache.glob("*.json") if "out_b" in entry.read_text(encoding="utf-8")]
    assert len(entries) == 1
    entries[0].write_text("{}", encoding="utf-8")  # what kfp kept, before this fix, for a step that exited 0

    code, out, err = run(folder, capsys, "--runner", "kfp")
    assert code == 1
    assert "step 's2' handed on no output 'out_b' though kfp counted it as succeeded" in err
    assert "--no-cache" in err
    assert "Traceback" not in err + out


# A step too large to start: KFP passes a step's whole program as one argument of `sh -c`, which Linux caps at
# 128 KiB. Build refuses it, at the step's cells, before writing anything; a step that fits runs.


def _program_size(folder: Path) -> int:
    """The bytes of step s2's longest command argument and its NUL, as build compiles it."""
    result = api.build(folder, check=True)
    compiled = compile_source(render(result.view), result.view.function, "t")
    return dict(limits._longest_arguments(compiled))["s2_step"]


@pytest.mark.parametrize(
    "probe",
    ["s = " + repr("x" * 120_000), "x = 1" + "\n" * 1_000_000 + "y = 2"],
    ids=["a 120 KB string", "a million blank lines"],
)
def test_a_step_too_large_for_one_argument_is_refused_by_build_and_run_and_nothing_is_written(
    probe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = base3(tmp_path / "nb", probe)
    with pytest.raises(BuildError) as caught:
        api.build(folder)
    [problem] = caught.value.diagnostics
    assert problem.code == "KY705"
    assert (problem.file, problem.key) == (str(folder / "pipeline.kale.yaml"), "steps[1].cells")
    assert re.fullmatch(
        r"step 's2' \(cell 3\) compiles to a [0-9.]+ KiB command, [0-9.]+ KiB of it cell 3; KFP passes a"
        r" step's code as one argument, at most 128 KiB: split the step, or read large data from a file or"
        r" volume",
        problem.message,
    ), problem.message
    for command in (["build", str(folder)], ["run", str(folder)]):
        assert main(command) == 1
        out, err = capsys.readouterr()
        assert "step 's2' (cell 3) compiles to a" in err
        assert "Traceback" not in out + err
    assert not (folder / ".kale").exists()


def test_a_step_at_the_argument_limit_runs_and_one_byte_more_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    padding = limits.MAX_ARGUMENT_BYTES - _program_size(base3(tmp_path / "small", 's = "x"'))
    folder = base3(tmp_path / "nb", f's = "{"x" * (1 + padding)}"')
    assert _program_size(folder) == limits.MAX_ARGUMENT_BYTES
    code, out, err = run(folder, capsys)
    assert code == 0, err
    assert "done" in step_line(out, "s2")

    base3(folder, f's = "{"x" * (2 + padding)}"')
    with pytest.raises(BuildError, match=r"step 's2' \(cell 3\) compiles to a 128\.1 KiB command"):
        api.build(folder)


def test_a_prelude_too_large_for_every_step_is_named_as_the_largest_part(tmp_path: Path) -> None:
    folder = base3(tmp_path / "nb", "pass")
    notebook = nbformat.read(folder / "nb.ipynb", as_version=4)
    notebook.cells[1].source = "a = 1\nbig = " + repr("x" * 110_000)
    nbformat.write(notebook, folder / "nb.ipynb")
    sidecar = SIDECAR.partition("steps:")[0] + "prelude: 2\nsteps:\n  - {name: s2, cells: 3-4}\n"
    (folder / "pipeline.kale.yaml").write_text(sidecar, encoding="utf-8")
    with pytest.raises(BuildError) as caught:
        api.build(folder)
    assert [d.key for d in caught.value.diagnostics] == ["steps[0].cells"]
    assert "step 's2' (cells 3-4) compiles to a" in str(caught.value)
    assert "KiB of it prelude cell 2, which every step carries; KFP passes" in str(caught.value)


@pytest.mark.parametrize(
    ("environment", "why"),
    [
        ({"PATH": "EMPTY"}, "cannot run 'sh': No such file or directory"),
        (
            # 7.7 MB: more than Linux lets arguments and environment together be, whatever the stack limit
            {f"KALE_YAML_TEST_BIG_{i}": "x" * 120_000 for i in range(64)},
            "its command and environment are larger than this system lets a process start with"
            " (Argument list too long)",
        ),
    ],
    ids=["no sh", "environment too large"],
)
def test_a_step_whose_process_cannot_start_fails_named_without_a_traceback(
    environment: dict[str, str],
    why: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = base3(tmp_path / "nb", "pass")
    assert main(["build", str(folder)]) == 0  # kfp compiles here, before the environment changes
    capsys.readouterr()
    (tmp_path / "EMPTY").mkdir()
    for name, value in environment.items():
        monkeypatch.setenv(name, str(tmp_path / value) if value == "EMPTY" else value)
    code, out, err = run(folder, capsys, "--runner", "kfp")  # kfp.local starts each step with `sh`
    assert code == 1
    assert f"run.log: step 's1' could not start: {why}" in err
    assert "Traceback" not in out + err
    assert "failed" in step_line(out, "s1")
    assert "not run" in step_line(out, "s2")


# A step that leaves a process behind: its process group ends with its main process, as a container does, and
# the run neither waits for the child nor leaves it running.


@pytest.mark.parametrize(
    "start_child",
    [
        "if os.fork() == 0:\n    {child}\n    os._exit(0)",
        "subprocess.Popen([sys.executable, '-c', {child!r}])",
    ],
    ids=["os.fork", "subprocess.Popen"],
)
def test_a_child_left_running_by_a_step_neither_holds_up_the_run_nor_outlives_it(
    start_child: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "child.pid"
    child = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))"
    child += "; time.sleep(75)"
    probe = "import os, subprocess, sys, time\n" + start_child.format(child=child)
    probe += f"\nwhile not os.path.exists({str(pid_file)!r}): time.sleep(0.01)"
    started = time.monotonic()
    code, out, err = run(base3(tmp_path / "nb", probe), capsys)
    assert code == 0, err
    assert time.monotonic() - started < 45  # not the child's 75 seconds
    for step in ("s1", "s2", "s3"):
        assert "done" in step_line(out, step)
    assert "interrupted" not in out + err
    child_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)


# A cell that breaks what the runtime saves and loads values with: the runtime took its own functions when it
# loaded, and kfp's executor gets the modules back, so the step saves its values as the notebook keeps them.


@pytest.mark.parametrize(
    "probe",
    [
        "import builtins\nbuiltins.open = None",
        "import os\nos.replace = os.makedirs = os.rename = os.fsync = None",
        """\
        import builtins, io, json, os, shutil, tempfile
        builtins.open = io.open = json.dumps = json.dump = None
        os.mkdir = os.listdir = os.remove = os.rmdir = os.urandom = None
        os.path.join = os.path.isdir = os.path.dirname = os.path.basename = None
        tempfile.mkdtemp = shutil.rmtree = None
        """,
    ],
    ids=["builtins.open", "os.replace and os.makedirs", "os, os.path, io, json, tempfile and shutil"],
)
def test_a_cell_that_breaks_open_or_os_does_not_stop_its_values_from_reaching_later_steps(
    probe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = base3(tmp_path / "nb", probe)
    code, out, err = run(folder, capsys)
    assert code == 0, err
    for step in ("s1", "s2", "s3"):
        assert "done" in step_line(out, step)
    [log] = (folder / ".kale" / "runs").glob("*/tasks/s3-step/log.txt")
    assert "2" in log.read_text(encoding="utf-8").splitlines()  # s3's print(b): b = a + 1 arrived from s2
