"""What a step needs on the cluster: `packages: auto` per step and pinned, local modules and files carried
with the step, `validate`'s warnings and notes, `kale-yaml packages`, and a local run's check."""

from __future__ import annotations

import ast
import base64
import importlib.metadata
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError
from kale_yaml.plan.installed import Installed
from kale_yaml.plan.shipping import Shipped
from kale_yaml.render.view import shipped_literal as view_shipped
from kale_yaml.run.environment import missing_packages
from kale_yaml.run.local import RunOptions, run_local
from kale_yaml.runtime import marshal
from tests.conftest import CASES, REPO, CopyCase

CASE = CASES / "valid" / "packages_auto"
_PIP_LINE = re.compile(r"pip install --quiet --no-warn-script-location (.*?)\s+&&")


def installed(distribution: str) -> str:
    return f"{distribution}=={importlib.metadata.version(distribution)}"


def compiled_installs(yaml_path: Path) -> dict[str, list[str]]:
    """Each executor's packages_to_install, read back from the compiled YAML's pip command."""
    compiled = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for name, executor in compiled["deploymentSpec"]["executors"].items():
        script = executor["container"]["command"][2]
        line = _PIP_LINE.search(script)
        assert line is not None, script
        found[name.removeprefix("exec-").removesuffix("-step")] = re.findall(r"'([^']*)'", line.group(1))
    return found


def write_sidecar(folder: Path, change: Any) -> None:
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    change(data)
    sidecar.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_each_step_installs_what_its_own_cells_import_pinned_to_the_installed_version(
    copy_case: CopyCase,
) -> None:
    built = api.build(copy_case(CASE))
    dill = installed("dill")
    assert compiled_installs(built.yaml_path) == {
        "parse": [dill, installed("PyYAML")],
        "render": [dill, installed("Jinja2")],
        "count": [dill],  # helpers.py and textkit/ travel with the step; statistics is Python's own
        "summarize": [dill, "numpy>=1.26"],  # numpy imported in a function; the explicit entry wins
    }
    # The lock is reviewable in the generated .py too, per component.
    assert f"packages_to_install=['{dill}', '{installed('PyYAML')}']" in built.python_path.read_text()


def test_build_check_notices_a_changed_installed_version(
    copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_case(CASE)
    api.build(folder)
    assert not api.build(folder, check=True).changed
    real = Installed.version

    def upgraded(self: Installed, distribution: str) -> str | None:
        return "99.0" if distribution == "PyYAML" else real(self, distribution)

    monkeypatch.setattr(Installed, "version", upgraded)
    assert api.build(folder, check=True).changed
    assert main(["build", str(folder), "--check"]) == 1


def test_a_local_module_travels_with_the_step_that_imports_it(
    copy_case: CopyCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_case(CASE)
    built = api.build(folder)
    away = tmp_path / "away"
    away.mkdir()
    for name in ("helpers.py", "textkit", "labels.txt"):  # out of the working folder: only the code has them
        shutil.move(folder / name, away / name)
    scratch = set(Path(tempfile.gettempdir()).glob("kale-yaml-step-*"))
    result = run_local(built.project, RunOptions(use_cache=False), built.view)
    assert result.failure is None, str(result.failure)
    assert {s.state for s in result.steps.values()} == {"done"}
    assert set(Path(tempfile.gettempdir()).glob("kale-yaml-step-*")) == scratch  # removed after the step
    monkeypatch.syspath_prepend(str(away))  # this test's process needs helpers to read a helpers.Box back
    (box_path,) = (result.run_dir / "artifacts").glob("*/count-step/out_box")
    box: Any = marshal.load_value(str(box_path))
    assert type(box).__module__ == "helpers" and box.value == 6


def test_a_step_with_files_runs_in_the_folder_that_holds_them(copy_case: CopyCase) -> None:
    project = api.validate(copy_case(CASE))
    environments = project.environments.steps
    assert environments["count"].workdir and not environments["parse"].workdir
    assert [item.path for item in environments["count"].shipped] == [
        "helpers.py", "textkit/__init__.py", "textkit/words.py", "labels.txt",
    ]  # fmt: skip
    # summarize takes `box`, a helpers.Box, from count: it carries helpers too, to unpickle it.
    assert environments["summarize"].local_modules == ("helpers", "textkit")
    assert environments["parse"].shipped == ()


def test_explicit_packages_warn_about_an_unlisted_import_at_its_cell(copy_case: CopyCase) -> None:
    folder = copy_case(CASE)

    def explicit(data: dict[str, Any]) -> None:
        data["pipeline"]["packages"] = ["pyyaml", "pandas"]
        del data["steps"][3]["packages"]

    write_sidecar(folder, explicit)
    project = api.validate(folder)
    found = {(d.code, d.cell, d.line): d for d in project.warnings}
    jinja = found[("KY511", 4, 1)]
    assert jinja.severity == "warning"
    assert jinja.message == (
        "'jinja2' is imported here, but neither the packages nor the image_packages of step 'render' provide"
        f' it: add "{installed("Jinja2")}" to packages (or use packages: auto), or it fails on the cluster'
        " with ModuleNotFoundError"
    )
    assert found[("KY511", 6, 8)].message.startswith("'numpy' is imported here, but neither the packages")
    unused = [d for d in project.warnings if d.code == "KY512"]
    assert [(d.severity, d.key) for d in unused] == [("note", "pipeline.packages[1]")]
    assert main(["validate", str(folder)]) == 0
    assert main(["validate", "--strict", str(folder)]) == 1


def test_image_packages_count_as_provided(copy_case: CopyCase) -> None:
    folder = copy_case(CASE)

    def declared(data: dict[str, Any]) -> None:
        data["pipeline"]["image_packages"] = ["jinja2"]

    write_sidecar(folder, declared)
    built = api.build(folder)
    assert compiled_installs(built.yaml_path)["render"] == [installed("dill")]


def test_packages_command_prints_the_lock(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_case(CASE)
    assert main(["packages", str(folder), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"step": "parse", "import": "yaml", "distribution": "PyYAML",
            "version": importlib.metadata.version("PyYAML"), "source": "auto"} in rows  # fmt: skip
    assert {"step": "count", "import": "helpers", "distribution": "helpers.py", "version": "222 bytes",
            "source": "local"} in rows  # fmt: skip
    assert {"step": "summarize", "import": "numpy", "distribution": "numpy>=1.26",
            "version": importlib.metadata.version("numpy"), "source": "sidecar"} in rows  # fmt: skip
    assert main(["packages", str(REPO / "examples" / "wine")]) == 0
    table = capsys.readouterr().out
    assert re.search(r"train_forest\s+sklearn\s+scikit-learn\s+\S+\s+auto", table)


def test_a_local_run_names_the_steps_that_need_a_missing_package(copy_case: CopyCase) -> None:
    folder = copy_case(CASE)

    def listed(data: dict[str, Any]) -> None:
        data["steps"][1]["packages"] = ["surely-not-installed-kale-pkg>=1"]

    write_sidecar(folder, listed)
    project = api.validate(folder)
    assert missing_packages(project.pipeline) == [
        "surely-not-installed-kale-pkg (listed in packages of step 'render')"
    ]
    with pytest.raises(KaleYamlError) as caught:
        run_local(project, RunOptions())
    assert "surely-not-installed-kale-pkg (listed in packages of step 'render')" in str(caught.value)


@pytest.mark.parametrize(
    ("files", "code", "message"),
    [
        (["../outside.txt"], "KY513", "'../outside.txt' goes up with '..'"),
        (["/etc/hostname"], "KY513", "'/etc/hostname' is an absolute path"),
        (["missing.txt"], "KY514", "cannot ship missing.txt: no such file"),
    ],
)
def test_files_stay_in_the_sidecars_folder(
    files: list[str], code: str, message: str, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_case(CASE)
    write_sidecar(folder, lambda data: data["steps"][2].__setitem__("files", files))
    monkeypatch.chdir(folder)
    with pytest.raises(KaleYamlError) as caught:
        api.validate(".")
    (problem,) = caught.value.diagnostics
    assert (problem.code, problem.key) == (code, "steps[2].files[0]")
    assert message in problem.message


def test_a_symbolic_link_out_of_the_folder_is_refused(copy_case: CopyCase, tmp_path: Path) -> None:
    folder = copy_case(CASE)
    secret = tmp_path / "secret.txt"
    secret.write_text("no", encoding="utf-8")
    (folder / "labels.txt").unlink()
    (folder / "labels.txt").symlink_to(secret)
    with pytest.raises(KaleYamlError) as caught:
        api.validate(folder)
    (problem,) = caught.value.diagnostics
    assert problem.code == "KY513" and "leads outside the sidecar's folder" in problem.message


def test_a_large_file_is_refused_pointing_at_volumes(copy_case: CopyCase) -> None:
    folder = copy_case(CASE)
    (folder / "labels.txt").write_text("word " * 20_000, encoding="utf-8")
    with pytest.raises(KaleYamlError) as caught:
        api.validate(folder)
    (problem,) = caught.value.diagnostics
    assert problem.code == "KY515" and problem.key == "steps[2].files[0]"
    assert problem.message == (
        "labels.txt is 97.7 KiB; a step carries at most 64.0 KiB of local modules and files in its code: put"
        " large files on a volume (volumes:) and read them from its mount path"
    )


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8"))))
def test_any_shipped_content_is_written_back_byte_for_byte(content: bytes) -> None:
    """Whatever a file holds, the literal in the generated code gives the runtime its exact bytes back."""
    item = Shipped("data/x.bin", content, module=False)
    path, encoding, literal = view_shipped(item)
    text = ast.literal_eval(literal)
    assert (path, encoding) == ("data/x.bin", item.encoding)
    written = base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")
    assert written == content


def test_the_runtime_puts_shipped_files_in_a_private_folder_and_removes_it(tmp_path: Path) -> None:
    from kale_yaml.runtime.shipped import shipped_folder

    before, path = Path.cwd(), list(sys.path)
    blob = base64.b64encode(b"\0\1").decode()
    shipped = [("pkg/mod.py", "text", "VALUE = 1\n"), ("blob.bin", "base64", blob)]
    with shipped_folder(shipped, workdir=True):
        folder = Path.cwd()
        assert folder != before and sys.path[0] == str(folder)
        assert (folder / "pkg" / "mod.py").read_text() == "VALUE = 1\n"
        assert Path("blob.bin").read_bytes() == b"\0\1"
    assert Path.cwd() == before and sys.path == path and not folder.exists()


def test_a_step_too_large_for_its_command_names_what_it_carries(copy_case: CopyCase) -> None:
    folder = copy_case(CASE)
    (folder / "labels.txt").write_text("word " * 12_800, encoding="utf-8")  # 62.5 KiB: within the limit
    notebook = folder / "nb.ipynb"
    data = json.loads(notebook.read_text(encoding="utf-8"))
    data["cells"][4]["source"] += "\n# " + "x" * 40_000  # cell 5, the count step's
    notebook.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(KaleYamlError) as caught:
        api.build(folder)
    (problem,) = caught.value.diagnostics
    assert problem.code == "KY705" and problem.key == "steps[2].cells"
    assert "62.8 KiB of it the local modules and files it carries" in problem.message
