"""No string in a sidecar can change what generated code does: it parses, and values arrive unchanged."""

from __future__ import annotations

import ast
import shlex

import pytest
import yaml

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from kale_yaml.render.runtime_code import runtime_function
from tests.conftest import CASES, CopyCase

HOSTILE = [
    'it\'s "quoted"',
    "'''; import os; os.system('echo pwned'); '''",
    '"""\nimport os\n"""',
    "back\\slash\\n and \\' end\\",
    "{{ config }} {% for x in y %}{% endfor %} {# comment #}",
    "line one\nline two\r\nline three",
    "unicode: ü ñ 漢字 😀 \u2028 separator",
    "x" * 5000,
    "#!/bin/sh\n# comment\nexec rm -rf /",
]


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_strings_reach_the_compiled_pipeline_unchanged(text: str, copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "parameter_override")
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    data["pipeline"]["description"] = text
    data["parameters"]["values"]["extra_text"] = text
    data["pipeline"]["env"] = {"HOSTILE": text}
    data["pipeline"]["annotations"] = {
        "note": text
    }  # labels and node selectors: the schema allows no such text
    sidecar.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    result = api.build(folder)

    source = result.python_path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert source.count(runtime_function().source) == 1  # the runtime, as built: no sidecar text in it
    tree.body = [node for node in tree.body if getattr(node, "name", "") != runtime_function().name]
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    # The only calls generated code makes: kfp's decorators and task methods, and one into the runtime.
    assert calls == {
        "dsl.component",
        "dsl.pipeline",
        "_kale_yaml_runtime",
        "_kale_yaml_runtime().run_step",
        "repeat_step",
        "pad_step",
        "repeat_task.set_display_name",
        "pad_task.set_display_name",
        "repeat_task.set_env_variable",
        "pad_task.set_env_variable",
        "kubernetes.add_pod_annotation",
        "compiler.Compiler().compile",
        "compiler.Compiler",
    }
    compiled, platform = yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8"))
    assert compiled["pipelineInfo"]["description"] == text
    parameters = compiled["root"]["inputDefinitions"]["parameters"]
    assert parameters["extra_text"]["defaultValue"] == text
    executors = compiled["deploymentSpec"]["executors"].values()
    assert all({"name": "HOSTILE", "value": text} in e["container"]["env"] for e in executors)
    for settings in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        assert settings["podMetadata"]["annotations"] == {"note": text}


def test_hostile_cell_source_stays_data(copy_case: CopyCase) -> None:
    import nbformat

    folder = copy_case(CASES / "valid" / "parameter_override")
    path = folder / "nb.ipynb"
    notebook = nbformat.read(path, as_version=4)
    hostile = "'''" + ' {{ x }} {% raw %} \\ """ \n\r\t ü'
    cell = next(c for c in notebook.cells if "result = [label] * n" in c.source)
    cell.source = f"s = {hostile!r}\n" + cell.source
    nbformat.write(notebook, path)

    source = api.generate(api.validate(folder))

    cells = [
        n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    assert any(n.value == cell.source for n in cells)
    assert api.build(folder).yaml_path.is_file()


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_images_and_packages_are_refused_or_reach_pip_as_one_quoted_word(
    text: str, copy_case: CopyCase
) -> None:
    """KFP writes each requirement into the step's `sh -c` script as Python's repr() of it, which a single
    quote or a backslash turns into shell code; an image with whitespace is no image. Either validate refuses
    the value at its key, or the shell hands pip exactly the requirement written."""
    folder = copy_case(CASES / "valid" / "parameter_override")
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    image, package = f"python:3.11-slim{text[:20]}", text[:50]
    data["pipeline"]["image"] = image
    data["pipeline"]["packages"] = [package]
    sidecar.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    shell_safe = all(" " <= c <= "~" and c not in "'\\" for c in package)
    try:
        result = api.build(folder)
    except KaleYamlError as error:
        keys = {d.key for d in error.diagnostics}
        assert keys <= {"pipeline.image", "pipeline.packages[0]"} and all(d.line for d in error.diagnostics)
        assert ("pipeline.packages[0]" in keys) == (not shell_safe)
        assert ("pipeline.image" in keys) == any(not "!" <= c <= "~" for c in image)
        return
    assert shell_safe
    compiled = next(yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8")))
    for executor in compiled["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"] == image
        script = executor["container"]["command"][2]
        install = next(line for line in script.splitlines() if "pip install" in line and "dill" in line)
        words = shlex.split(install.split("&&")[0])
        assert package in words
