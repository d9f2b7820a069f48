"""A step that exits, dies, is killed or is stopped: `kale-yaml run` names the step and the cell, says how it
ended, leaves no cache entry for it, and leaves no step process behind. Real runs, through the CLI.

The notebook is the issue's *base3*: [markdown, `a = 1`, PROBE + `b = a + 1`, `print(b)`], steps s1..s3 are
cells 2..4, so every probe runs in step s2, cell 3.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from kale_yaml.cli.main import main
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


def run(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["run", str(folder)])
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
    assert run(folder, capsys)[0] == 0
    cache = folder / ".kale" / "cache"
    entries = [entry for entry in cache.glob("*.json") if "out_b" in entry.read_text(encoding="utf-8")]
    assert len(entries) == 1
    entries[0].write_text("{}", encoding="utf-8")  # what kfp kept, before this fix, for a step that exited 0

    code, out, err = run(folder, capsys)
    assert code == 1
    assert "step 's2' handed on no output 'out_b' though kfp counted it as succeeded" in err
    assert "--no-cache" in err
    assert "Traceback" not in err + out
