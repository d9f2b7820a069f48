"""Section `kale`: side by side with Kale, on the Kale-style test notebooks (tests/cases/kale/).

Kale: `kale --nb NOTEBOOK` of kubeflow-kale 2.3.0, which only compiles (the DSL script and the pipeline
YAML under .kale/) unless --upload_pipeline or --run_pipeline is given. It runs from its own venv,
<repo>/.venv-kale, made on demand the first time (`python3.11 -m venv`, `pip install kubeflow-kale==2.3.0`;
about 30-40 s) and reused afterwards. Ours: `kale-yaml build` from the sidecar that `kale-yaml import-kale`
wrote for the same notebook (the import is done once, not timed). Each run is a fresh process: wall time and
peak RSS. Target: ours at least 3x faster.

Kale 2.3.0 rejects some of what these notebooks hold, as Kale's older JupyterLab extension wrote it (metadata
keys it no longer knows, the legacy `block:` tag, ...). A notebook Kale cannot compile as written is measured
on a copy rewritten in Kale 2.3.0's dialect (`adapt_for_kale`: the same pipeline), and ours builds from that
copy too; what was rewritten, and Kale's error on the original, are printed and kept in the results. When even
the copy fails, the row shows Kale's error. When Kale cannot be installed at all, the section says why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    CommandFailed,
    Row,
    Section,
    Settings,
    child_env,
    console,
    median,
    run_command,
    run_module_measured,
)

KALE_VERSION = "2.3.0"
KALE_VENV = REPO / ".venv-kale"
KALE_PYTHON = KALE_VENV / "bin" / "python"
_MARKER = KALE_VENV / f".installed-kubeflow-kale-{KALE_VERSION}"
CASES = REPO / "tests" / "cases" / "kale"
NOTEBOOKS = ("fares", "branches", "implicit")
SPEEDUP = 3.0  # target: Kale's time / ours >= 3
SETUP_TIMEOUT = 900.0
KALE_TIMEOUT = 180.0


class KaleUnavailable(RuntimeError):
    """kubeflow-kale cannot be installed or started here."""


# -- the Kale venv -------------------------------------------------------------------------------------------


def _first_error_line(text: str) -> str:
    """The line that says what went wrong: an exception's `Name: message` line (the last one, as Python
    prints the cause last), pip's first `ERROR:` line, else the last line."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return line
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*", line):
            return line
    return lines[-1] if lines else "(no output)"


def _setup_step(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=SETUP_TIMEOUT, check=False, env=child_env()
        )
    except subprocess.TimeoutExpired as error:
        raise KaleUnavailable(f"{what} took over {SETUP_TIMEOUT:.0f} s") from error
    except OSError as error:
        raise KaleUnavailable(f"{what}: {error}") from error
    if done.returncode != 0:
        raise KaleUnavailable(f"{what} failed: {_first_error_line(done.stdout + done.stderr)}")


def kale_python(section: Section) -> Path:
    """The Python of <repo>/.venv-kale, with kubeflow-kale installed: made on the first call, reused after."""
    if _MARKER.exists() and KALE_PYTHON.exists():
        section.info["kale_venv"] = "reused"
        return KALE_PYTHON
    base = "python3.11" if shutil.which("python3.11") else sys.executable  # kubeflow-kale needs >= 3.11
    console.print(
        f"  setting up the Kale venv (once): {base} -m venv .venv-kale;"
        f" pip install kubeflow-kale=={KALE_VERSION} ..."
    )
    shutil.rmtree(KALE_VENV, ignore_errors=True)  # a half-made one from an interrupted run
    start = time.perf_counter()
    _setup_step([base, "-m", "venv", str(KALE_VENV)], f"{base} -m venv")
    pip = [str(KALE_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _setup_step([*pip, f"kubeflow-kale=={KALE_VERSION}"], f"pip install kubeflow-kale=={KALE_VERSION}")
    _setup_step([str(KALE_PYTHON), "-c", "import kale.cli"], "import kale.cli")
    seconds = time.perf_counter() - start
    _MARKER.touch()
    section.info.update(kale_venv="made", kale_venv_setup_seconds=seconds)
    console.print(f"  Kale venv ready in {seconds:.0f} s: {KALE_VENV}")
    return KALE_PYTHON


# -- Kale 2.3.0's dialect ------------------------------------------------------------------------------------

# The fields of Kale 2.3.0's NotebookConfig (PipelineConfig's and its own): it refuses any other key.
_KALE_FIELDS = frozenset(
    {
        "pipeline_name", "experiment_name", "pipeline_description", "base_image", "enable_caching",
        "volumes", "katib_run", "katib_metadata", "abs_working_dir", "marshal_path", "steps_defaults",
        "kfp_host", "storage_class_name", "volume_access_mode", "timeout", "security_context",
        "output_path", "notebook_path", "experiment", "snapshot_volumes",
    }
)  # fmt: skip
# Kale 2.3.0's tag language (kale/processors/constants.py, TAGS_LANGUAGE), by its prefixes: it refuses others.
_KALE_TAG = re.compile(
    r"^(skip|imports|functions|pipeline-parameters|pipeline-metrics"
    r"|(prev|step|notebook|annotation|label|limit|secret|image|cache|report):.+)$"
)
_CACHE_VALUES = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_BARE_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _adapt_tags(tags: list[str], changes: list[str]) -> list[str]:
    adapted: list[str] = []
    for tag in tags:
        new = tag
        if tag.startswith("block:"):
            new = "step:" + tag.removeprefix("block:")
        elif tag.startswith("cache:") and tag.removeprefix("cache:").lower() in _CACHE_VALUES:
            new = "cache:" + ("enabled" if _CACHE_VALUES[tag.removeprefix("cache:").lower()] else "disabled")
        if not _KALE_TAG.match(new):
            changes.append(f"dropped tag {tag}")
            continue
        if new != tag:
            changes.append(f"{tag} -> {new}")
        adapted.append(new)
    return adapted


def adapt_for_kale(notebook: dict[str, Any]) -> list[str]:
    """Rewrite a Kale-style notebook (nbformat JSON, in place) in Kale 2.3.0's dialect, the pipeline
    unchanged; return what was changed. `docker_image` becomes `base_image`; metadata keys Kale 2.3.0 lacks
    go (e.g. `autosnapshot`); `block:` becomes `step:`, `cache:true|false` `cache:enabled|disabled`; tags
    it does not know go (e.g. papermill's `parameters`); a bare name in a `pipeline-metrics` cell becomes
    `print(name)`.
    """
    changes: list[str] = []
    meta = notebook.get("metadata", {}).get("kubeflow_notebook")
    if isinstance(meta, dict):
        if "docker_image" in meta:
            image = meta.pop("docker_image")
            meta.setdefault("base_image", image)
            changes.append("docker_image -> base_image")
        for key in sorted(set(meta) - _KALE_FIELDS):
            del meta[key]
            changes.append(f"dropped metadata {key}")
        if isinstance(meta.get("steps_defaults"), list):
            meta["steps_defaults"] = _adapt_tags(meta["steps_defaults"], changes)
    for cell in notebook.get("cells", []):
        tags = cell.get("metadata", {}).get("tags")
        if not tags:
            continue
        tags = cell["metadata"]["tags"] = _adapt_tags(tags, changes)
        if cell.get("cell_type") == "code" and "pipeline-metrics" in tags:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            lines = []
            for line in source.splitlines():
                bare = _BARE_NAME.match(line)
                if bare:
                    line = f"print({bare.group(1)})"
                    changes.append(f"metric {bare.group(1)} -> {line}")
                lines.append(line)
            cell["source"] = "\n".join(lines)
    return list(dict.fromkeys(changes))


# -- the section ---------------------------------------------------------------------------------------------


@dataclass
class _Case:
    name: str
    folder: Path
    rejected: str = ""  # Kale's error on the notebook as written ("" when it compiled it)
    changes: list[str] = field(default_factory=list)  # rewrites of the copy both sides were measured on
    failed: str = ""  # Kale's error on the notebook it was to be measured on

    @property
    def notebook(self) -> Path:
        return self.folder / f"{self.name}.ipynb"


def run(settings: Settings, section: Section) -> None:
    n = settings.n(3, quick=1)
    section.info.update(repeat=n, kale_version=KALE_VERSION, notebooks=list(NOTEBOOKS))
    try:
        python = kale_python(section)
    except KaleUnavailable as error:
        reason = str(error)
        section.info["unavailable"] = reason
        console.print(f"  [yellow]unavailable:[/] {reason}")
        section.rows.append(
            Row(what=f"kubeflow-kale {KALE_VERSION}", ours=0.0, baseline=0.0, failed=f"unavailable: {reason}")
        )
        return

    ours_env = child_env()
    with tempfile.TemporaryDirectory(prefix="kale-bench-kale-") as tmp:
        root = Path(tmp)
        rss_file = root / "rss"
        kale_tmp = root / "kale-tmp"  # Kale compiles in mkdtemp() folders it leaves behind
        kale_tmp.mkdir()
        # HOSTNAME set makes Kale look up its pod's PodDefaults in the cluster; here it only compiles.
        kale_env = {key: value for key, value in child_env(TMPDIR=str(kale_tmp)).items() if key != "HOSTNAME"}

        def kale(case: _Case) -> tuple[float, float]:
            shutil.rmtree(case.folder / ".kale", ignore_errors=True)
            rss_file.unlink(missing_ok=True)
            measured = run_module_measured(
                "kale.cli",
                ["--nb", case.notebook.name],
                cwd=case.folder,
                rss_file=rss_file,
                python=python,
                env=kale_env,
                timeout=KALE_TIMEOUT,
            )
            if not list((case.folder / ".kale").glob("*.pipeline.yaml")):
                raise CommandFailed("kale --nb exited 0 but wrote no .kale/*.pipeline.yaml")
            return measured

        def kale_error(case: _Case) -> str:
            """Compile once, unmeasured (also the warm-up); Kale's error, or "" when it compiled."""
            try:
                kale(case)
            except CommandFailed as error:
                return _first_error_line(str(error))
            except subprocess.TimeoutExpired:
                return f"timed out after {KALE_TIMEOUT:.0f} s"
            return ""

        def ours(case: _Case) -> tuple[float, float]:
            out = root / f"out-{case.name}"
            shutil.rmtree(out, ignore_errors=True)
            return run_module_measured(
                "kale_yaml", ["build", case.name, "-o", str(out)], cwd=root, rss_file=rss_file, env=ours_env
            )

        cases: list[_Case] = []
        for name in NOTEBOOKS:
            case = _Case(name, root / name)
            shutil.copytree(CASES / name, case.folder, ignore=shutil.ignore_patterns(".kale", "*.kale.yaml"))
            case.rejected = kale_error(case)
            if case.rejected:
                data = json.loads(case.notebook.read_text(encoding="utf-8"))
                case.changes = adapt_for_kale(data)
                if case.changes:
                    case.notebook.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
                    case.failed = kale_error(case)
                else:
                    case.failed = case.rejected
                console.print(f"  {name}: Kale {KALE_VERSION} rejects it as written: {case.rejected}")
                if case.changes and not case.failed:
                    console.print(
                        f"  {name}: measured (both sides) on a copy in Kale {KALE_VERSION}'s dialect:"
                        f" {'; '.join(case.changes)}"
                    )
            if not case.failed:
                run_command([sys.executable, "-m", "kale_yaml", "import-kale", case.notebook.name],
                            cwd=case.folder, env=ours_env)  # fmt: skip
                ours(case)  # warm-up
            cases.append(case)
        section.info["cases"] = {
            case.name: {"rejected_as_written": case.rejected, "adapted": case.changes, "failed": case.failed}
            for case in cases
        }

        measured = [case for case in cases if not case.failed]
        times: dict[tuple[str, str], list[float]] = {}
        peaks: dict[tuple[str, str], list[float]] = {}
        for _ in range(n):  # interleaved: Kale and ours back to back on each notebook
            for case in measured:
                for side, function in (("kale", kale), ("ours", ours)):
                    elapsed, rss = function(case)
                    times.setdefault((side, case.name), []).append(elapsed)
                    peaks.setdefault((side, case.name), []).append(rss)

        for case in cases:
            note = f"adapted for Kale {KALE_VERSION}" if case.changes else ""
            if case.failed:
                section.rows.append(
                    Row(
                        what=f"{case.name}: wall time",
                        ours=0.0,
                        baseline=0.0,
                        target=f"<= {1 / SPEEDUP:.2f} ({SPEEDUP:g}x)",
                        baseline_name="kale --nb",
                        note=note,
                        failed=f"kale --nb: {case.failed}",
                    )
                )
                continue
            for what, samples, unit in (("wall time", times, "s"), ("peak RSS", peaks, "MiB")):
                theirs, ours_samples = samples[("kale", case.name)], samples[("ours", case.name)]
                row = Row(
                    what=f"{case.name}: {what}",
                    ours=median(ours_samples),
                    baseline=median(theirs),
                    unit=unit,
                    baseline_name="kale --nb",
                    ours_samples=ours_samples,
                    baseline_samples=theirs,
                )
                row.note = "; ".join(part for part in (note, f"Kale/ours {1 / row.ratio:.1f}x") if part)
                if unit == "s":
                    row.target = f"<= {1 / SPEEDUP:.2f} ({SPEEDUP:g}x)"
                    row.met = row.ratio <= 1 / SPEEDUP
                section.rows.append(row)
