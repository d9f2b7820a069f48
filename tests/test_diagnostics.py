"""The catalogue of diagnostics: each kind has one stable code, is documented, and is the only way a
diagnostic is made; the invalid cases report the code of their kind, and the text leaves the code out."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kale_yaml import api
from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import CATALOGUE, Kind
from kale_yaml.errors import Diagnostic, KaleYamlError
from tests.conftest import CASES, REPO

PACKAGE = REPO / "kale_yaml"
DOCS = REPO / "docs" / "diagnostics.md"
_CODE = re.compile(r"KY[1-9][0-9][0-9]")
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_HEADING = re.compile(r"^### (KY[0-9]+) ([a-z0-9-]+)$", re.MULTILINE)

# Each invalid case, and the codes of the problems it reports.
EXPECTED_CODES = {
    "analysis_cell_magic": {"KY402"},
    "analysis_deleted_name": {"KY406"},
    "analysis_inputs_undefined": {"KY408"},
    "analysis_read_before_defined": {"KY405"},
    "analysis_return_outside_function": {"KY401"},
    "analysis_several_undefined": {"KY405"},
    "analysis_syntax_error": {"KY401"},
    "analysis_undefined_name": {"KY405"},
    "cluster_limit_below_request": {"KY603"},
    "names_after_self": {"KY342"},
    "names_after_unknown_step": {"KY343"},
    "names_duplicate_step": {"KY341"},
    "names_duplicate_volume": {"KY610"},
    "names_metrics_unknown_step": {"KY343"},
    "names_reserved_step_name": {"KY340"},
    "names_snapshot_unknown_volume": {"KY611"},
    "names_unknown_metric": {"KY502"},
    "names_unknown_volume_in_step": {"KY611"},
    "notebook_json_too_deep": {"KY306"},
    "notebook_nbformat3": {"KY306"},
    "notebook_not_found": {"KY303"},
    "notebook_not_json": {"KY306"},
    "notebook_nul_in_path": {"KY301"},
    "notebook_path_escapes": {"KY302"},
    "notebook_r_kernel": {"KY307"},
    "notebook_tilde_path": {"KY303"},
    "order_step_around_another": {"KY332"},
    "order_step_between_cells_of_another": {"KY332"},
    "order_steps_listed_backwards": {"KY332"},
    "ownership_overlapping_steps": {"KY330"},
    "ownership_prelude_and_step": {"KY330"},
    "ownership_unowned_cell": {"KY331"},
    "packages_file_outside_folder": {"KY513", "KY514"},
    "packages_unknown_module": {"KY510"},
    "params_annotation_disagrees": {"KY355"},
    "params_dict_int_key": {"KY354"},
    "params_float_overflow": {"KY354"},
    "params_int_beyond_2_53": {"KY354"},
    "params_kinds_kfp_cannot_carry": {"KY354"},
    "params_list_as_dict_key": {"KY353"},
    "params_lone_surrogate": {"KY350", "KY354"},
    "params_not_literal": {"KY352"},
    "params_reserved_name": {"KY357"},
    "params_statement": {"KY351"},
    "params_tuple_in_dict": {"KY354"},
    "params_value_null": {"KY203"},
    "params_values_kfp_cannot_carry": {"KY354"},
    "plan_cycle_through_after": {"KY501"},
    "schema_bad_duration": {"KY207"},
    "schema_bad_quantity": {"KY207"},
    "schema_bad_step_name": {"KY207"},
    "schema_image_with_space": {"KY207"},
    "schema_missing_steps": {"KY202"},
    "schema_package_shell_quote": {"KY207"},
    "schema_pipeline_name_with_newline": {"KY207"},
    "schema_selector_wrong_shape": {"KY207"},
    "schema_snapshot_unknown_when": {"KY207"},
    "schema_step_name_with_newline": {"KY207"},
    "schema_unknown_key_typo": {"KY201"},
    "schema_unsupported_version": {"KY207"},
    "schema_volume_claim_and_create": {"KY207"},
    "schema_wrong_type": {"KY207"},  # `packages: pandas`: neither auto nor a list
    "selector_all_skipped": {"KY322"},
    "selector_ambiguous_heading": {"KY318"},
    "selector_backwards_range": {"KY313"},
    "selector_bad_regex": {"KY319"},
    "selector_duplicate_id": {"KY316"},
    "selector_from_after_to": {"KY313"},
    "selector_from_nested_150_deep": {"KY107"},
    "selector_from_nested_too_deep": {"KY208"},
    "selector_match_nothing": {"KY320"},
    "selector_only_markdown": {"KY321"},
    "selector_past_last_cell": {"KY314"},
    "selector_unknown_heading": {"KY317"},
    "selector_unknown_id": {"KY315"},
    "yaml_bad_tagged_scalars": {"KY110"},
    "yaml_billion_laughs": {"KY109"},
    "yaml_control_character": {"KY104"},
    "yaml_duplicate_key": {"KY113"},
    "yaml_empty_file": {"KY106"},
    "yaml_nested_too_deep": {"KY107"},
    "yaml_recursive_alias": {"KY108"},
    "yaml_recursive_alias_mapping": {"KY108"},
    "yaml_syntax_error": {"KY104"},
}
INVALID = sorted(p.name for p in (CASES / "invalid").iterdir() if p.is_dir())


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_codes_and_names_are_unique_and_well_formed() -> None:
    made = [
        node.args[0].value
        for path in [PACKAGE / "diagnostics.py"]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_kind"
        if isinstance(node.args[0], ast.Constant)
    ]
    assert len(made) == len(set(made)) == len(CATALOGUE) > 90
    for code, kind in CATALOGUE.items():
        assert kind.code == code and _CODE.fullmatch(code), code
        assert _NAME.fullmatch(kind.name), kind.name
        assert kind.summary and "\n" not in kind.summary
    names = [kind.name for kind in CATALOGUE.values()]
    assert len(names) == len(set(names))


def test_a_code_or_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="KY201"):
        ky._kind("KY201", "another-kind", "a second kind with a taken code")
    with pytest.raises(ValueError, match="unknown-key"):
        ky._kind("KY199", "unknown-key", "a second kind with a taken name")
    assert "KY199" not in CATALOGUE


def test_a_kind_outside_the_catalogue_makes_no_diagnostic() -> None:
    invented = Kind("KY999", "invented", "made up at the site")
    with pytest.raises(ValueError, match="not in the catalogue"):
        invented.at("pipeline.kale.yaml", "something")
    copy = Kind(ky.UNKNOWN_KEY.code, ky.UNKNOWN_KEY.name, ky.UNKNOWN_KEY.summary)
    with pytest.raises(ValueError):
        copy.at("pipeline.kale.yaml", "something")


def test_a_diagnostic_carries_its_kind_s_code_and_severity_but_the_text_leaves_the_code_out() -> None:
    d = ky.UNKNOWN_KEY.at("pipeline.kale.yaml", "unknown key 'x'", line=3, col=5, key="pipeline.x")
    assert (d.code, d.severity) == ("KY201", "error")
    assert str(d) == "pipeline.kale.yaml:3:5: pipeline.x: unknown key 'x'"
    assert str(d) == str(Diagnostic("pipeline.kale.yaml", 3, 5, "pipeline.x", "unknown key 'x'"))
    warning = ky.LEFT_OUT.at("nb.ipynb", "line magic '%time' left out", cell=2, line=1)
    assert (warning.code, warning.severity) == ("KY409", "warning")
    assert str(warning) == "nb.ipynb: cell 2, line 1: line magic '%time' left out"


def test_every_code_is_documented_and_the_documentation_lists_no_other() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = dict(_HEADING.findall(text))
    catalogued = {code: kind.name for code, kind in CATALOGUE.items()}
    assert documented == catalogued
    assert "](diagnostics.md)" in (REPO / "docs" / "index.md").read_text(encoding="utf-8")


def test_every_documented_code_has_an_example() -> None:
    sections = re.split(r"^### ", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    missing = [section.split("\n", 1)[0] for section in sections if "\n```\n" not in section]
    assert missing == []


def _construction_sites(source: str, module: str) -> list[str]:
    """`module:function` of each diagnostic made without a kind: `Diagnostic(...)`, however imported."""
    tree = ast.parse(source)
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Call):
                func = child.func
                name = (
                    func.id
                    if isinstance(func, ast.Name)
                    else func.attr
                    if isinstance(func, ast.Attribute)
                    else ""
                )
                if name == "Diagnostic":
                    found.append(f"{module}:{function}")
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_diagnostics_are_made_through_the_catalogue() -> None:
    sites = [
        site
        for path in _sources()
        for site in _construction_sites(
            path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).as_posix()
        )
    ]
    assert sites == ["diagnostics.py:at"]


def test_the_construction_site_finder_sees_calls_in_functions_and_through_a_module() -> None:
    source = (
        "from kale_yaml import errors\n"
        "from kale_yaml.errors import Diagnostic\n"
        "TOP = Diagnostic('f')\n"
        "def helper() -> None:\n"
        "    def inner() -> object:\n"
        "        return errors.Diagnostic(file='f', message='m')\n"
    )
    assert _construction_sites(source, "m.py") == ["m.py:<module>", "m.py:inner"]


@pytest.mark.parametrize("case", INVALID)
def test_each_invalid_case_reports_the_code_of_its_kind(case: str) -> None:
    with pytest.raises(KaleYamlError) as caught:
        api.validate(CASES / "invalid" / case)
    assert {d.code for d in caught.value.diagnostics} == EXPECTED_CODES[case]


def test_every_invalid_case_expects_catalogued_codes() -> None:
    assert set(EXPECTED_CODES) == set(INVALID)
    assert {code for codes in EXPECTED_CODES.values() for code in codes} <= set(CATALOGUE)
