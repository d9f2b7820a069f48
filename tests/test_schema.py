"""The sidecar's JSON Schema and the messages `schema.check` gives when a sidecar does not fit it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from syrupy.assertion import SnapshotAssertion

from kale_yaml.errors import SchemaError
from kale_yaml.load import schema as schema_module
from kale_yaml.load.document import Document, parse_document
from kale_yaml.load.schema import check, load_schema, schema_text

CASES = Path(__file__).parent / "cases" / "invalid"

HEAD = """\
version: 1
notebook: nb.ipynb
pipeline:
  name: demo
"""
ONE_STEP = """\
steps:
  - name: load
    cells: 1
"""

FULL = """\
version: 1
notebook: wine.ipynb
pipeline:
  name: wine-quality
  description: Trains two models
  experiment: wine
  image: python:3.11-slim
  packages: [auto, pandas, scikit-learn>=1.4]
  image_packages: [numpy]
  files: [config.json, data/labels.csv]
  cache: true
  report: true
  resources: {cpu: 500m, memory: 2Gi, gpu: 1, gpu_type: nvidia.com/gpu, cpu_limit: 1, memory_limit: 4Gi}
  retries: 1
  timeout: 2h
  env: {PYTHONUNBUFFERED: 1, MODE: batch, DEBUG: false}
  secrets: [{secret: s3-creds, key: secret_key, env: AWS_SECRET_ACCESS_KEY}]
  node_selector: {pool: cpu}
  tolerations: [{key: spot, operator: Equal, value: "true", effect: NoExecute, toleration_seconds: 60}]
  labels: {team: ml, example.com/cost-center: "42"}
  annotations: {owner: ml-platform, example.com/note: "anything: goes"}
parameters:
  cells: 2
  values: {seed: 7, alpha: 0.5, verbose: true, name: wine, layers: [64, 32], opts: {depth: 3}}
prelude: "1"
skip: [9, {match: "^# scratch"}]
steps:
  - name: load
    cells: "3-4"
    inputs: [raw_path]
    outputs: [df]
  - name: train
    cells: {heading: "Training"}
    after: [load]
    image: python:3.11
    packages: [xgboost]
    image_packages: [torch]
    files: [weights.txt]
    cache: false
    report: false
    resources: {cpu: "2", memory: 4Gi, gpu: 1, gpu_type: nvidia.com/gpu}
    retries: 2
    timeout: 30m
    env: {LOG_LEVEL: debug}
    secrets: [{secret: s3-creds, key: access_key, env: AWS_ACCESS_KEY_ID}]
    volumes: [data]
    node_selector: {pool: gpu}
    tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
    labels: {team: ml}
    annotations: {owner: ml-platform}
  - name: tune
    cells: [{id: "a1b2c3"}, {from: 20, to: "22-23"}, " 24 - 25 "]
    timeout: 5400
  - name: evaluate
    cells: {from: {heading: "Evaluation"}}
metrics:
  step: evaluate
  names: [accuracy, f1]
volumes:
  - name: data
    mount: /data
    claim: team-data
  - name: scratch
    mount: /scratch
    create: {size: 5Gi, storage_class: standard, access_modes: [ReadWriteOnce], keep: true,
             from_snapshot: data-snap-1}
snapshots:
  - volume: data
    when: after_run
  - volume: scratch
    when: before_each_step
"""


def document(text: str) -> Document:
    return parse_document(textwrap.dedent(text), Path("pipeline.kale.yaml"), "pipeline.kale.yaml")


def errors_of(text: str) -> str:
    """The diagnostics for `text` exactly as a user reads them."""
    with pytest.raises(SchemaError) as info:
        check(document(text))
    return "\n".join(str(d) for d in info.value.diagnostics)


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    """Every (location, subschema) in the schema."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


# The schema itself


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_names_itself_for_editors() -> None:
    schema = load_schema()
    assert schema["$id"] == "https://kale-yaml.dev/schemas/pipeline.kale.schema.json"
    assert schema["title"]


def test_every_property_has_a_description() -> None:
    missing = [
        f"{where}/properties/{name}"
        for where, node in walk(load_schema())
        for name, sub in node.get("properties", {}).items()
        if isinstance(node.get("properties"), dict) and not sub.get("description")
    ]
    assert missing == []


def test_every_definition_has_a_description() -> None:
    assert [name for name, sub in load_schema()["$defs"].items() if not sub.get("description")] == []


def test_every_object_rejects_unknown_keys() -> None:
    open_objects = [
        where
        for where, node in walk(load_schema())
        if "properties" in node and node.get("additionalProperties") is not False
    ]
    assert open_objects == []


def test_every_ref_points_at_a_definition() -> None:
    definitions = load_schema()["$defs"]
    refs = {node["$ref"] for _, node in walk(load_schema()) if "$ref" in node}
    assert refs and all(ref.removeprefix("#/$defs/") in definitions for ref in refs)


def test_schema_text_is_the_loaded_schema() -> None:
    assert json.loads(schema_text()) == load_schema()


def test_installed_package_copy_is_preferred_over_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "kale_yaml" / "schemas" / schema_module.SCHEMA_FILE
    packaged.parent.mkdir(parents=True)
    packaged.write_text('{"title": "packaged"}', encoding="utf-8")
    checkout = tmp_path / "schemas" / schema_module.SCHEMA_FILE
    monkeypatch.setattr(schema_module, "_SCHEMA_PLACES", (packaged, checkout))
    schema_text.cache_clear()
    load_schema.cache_clear()
    try:
        assert load_schema() == {"title": "packaged"}
    finally:
        schema_text.cache_clear()
        load_schema.cache_clear()


def test_checkout_copy_is_used_when_the_package_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Path(__file__).parent.parent / "schemas" / schema_module.SCHEMA_FILE
    monkeypatch.setattr(schema_module, "_SCHEMA_PLACES", (tmp_path / "missing.json", real))
    schema_text.cache_clear()
    try:
        assert schema_text() == real.read_text(encoding="utf-8")
    finally:
        schema_text.cache_clear()


# Valid sidecars


def test_full_sidecar_using_every_key_passes() -> None:
    check(document(FULL))


def test_full_sidecar_covers_every_key_of_the_schema() -> None:
    data = document(FULL).data
    used: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            used.update(str(k) for k in value)
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(data)
    declared = {name for _, node in walk(load_schema()) for name in node.get("properties", {})}
    assert declared - used == set()


def test_minimal_sidecar_passes() -> None:
    check(document(HEAD + ONE_STEP))


@pytest.mark.parametrize(
    "cells",
    [
        "7",
        '"7"',
        '"3-6"',
        '" 3 - 6 "',
        "3-6",
        "{id: a1b2}",
        "{heading: Training}",
        '{match: "^import"}',
        "{from: 3}",
        "{from: {heading: A}, to: {heading: B}}",
        "{from: [1, 2], to: 9}",
        "[1, '4-5', {id: x}]",
    ],
)
def test_every_selector_form_is_accepted(cells: str) -> None:
    check(document(HEAD + f"steps:\n  - name: a\n    cells: {cells}\n"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cpu", '"500m"'),
        ("cpu", '"2"'),
        ("cpu", "2"),
        ("cpu", "0.5"),
        ("cpu", '"0.25"'),
        ("memory", "4Gi"),
        ("memory", "512Mi"),
        ("memory", "1G"),
        ("memory", "1073741824"),
    ],
)
def test_kubernetes_quantities_are_accepted(key: str, value: str) -> None:
    check(document(HEAD + f"  resources: {{{key}: {value}}}\n" + ONE_STEP))


@pytest.mark.parametrize("value", ["90s", "30m", "2h", "1h30m", "1h30m15s", "3600"])
def test_durations_are_accepted(value: str) -> None:
    check(document(HEAD + f"  timeout: {value}\n" + ONE_STEP))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cpu", '"2 cores"'),
        ("cpu", '"1.5Gi"'),
        ("cpu", "0"),
        ("memory", "4GB"),
        ("memory", "1.5Gi"),
        ("memory", "-1"),
        ("memory", "[4Gi]"),
    ],
)
def test_bad_quantities_are_rejected(key: str, value: str) -> None:
    with pytest.raises(SchemaError):
        check(document(HEAD + f"  resources: {{{key}: {value}}}\n" + ONE_STEP))


@pytest.mark.parametrize("value", ["30 minutes", "1d", "h", "''", "0", "1.5", "30M"])
def test_bad_durations_are_rejected(value: str) -> None:
    with pytest.raises(SchemaError):
        check(document(HEAD + f"  timeout: {value}\n" + ONE_STEP))


# Messages


def test_unknown_step_key_suggests_closest(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD + "steps:\n  - name: a\n    cells: 1\n    imgae: python:3.12\n") == snapshot


def test_unknown_key_is_located_at_the_key_itself() -> None:
    with pytest.raises(SchemaError) as info:
        check(document(HEAD + "steps:\n  - name: a\n    cells: 1\n    imgae: python:3.12\n"))
    [diagnostic] = info.value.diagnostics
    assert (diagnostic.line, diagnostic.col, diagnostic.key) == (8, 5, "steps[0].imgae")


def test_unknown_key_without_close_match_lists_allowed_keys(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD + ONE_STEP + "metrics: {step: load, names: [acc], zebra: 1}\n") == snapshot


def test_unknown_top_level_key_suggests_closest(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD + ONE_STEP + "snapshot:\n  - {volume: data, when: after_run}\n") == snapshot


def test_missing_required_key_is_reported_at_its_parent(snapshot: SnapshotAssertion) -> None:
    assert (
        errors_of("version: 1\nnotebook: nb.ipynb\npipeline:\n  image: x\nsteps:\n  - cells: 1\n") == snapshot
    )


def test_wrong_type_names_the_types_in_plain_words(snapshot: SnapshotAssertion) -> None:
    text = (
        HEAD
        + "  cache: yes please\n  packages: pandas\n  env: {A: [1]}\n"
        + "steps:\n  - name: a\n    cells: 1\n    after: load\n    retries: 1.5\n"
    )
    assert errors_of(text) == snapshot


def test_quoted_numbers_and_unquoted_text_get_a_hint(snapshot: SnapshotAssertion) -> None:
    text = HEAD + '  retries: "3"\n  cache: "false"\n  labels: {version: 2}\n' + ONE_STEP
    assert errors_of(text) == snapshot


def test_empty_value_is_called_an_empty_value(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD + "  image:\n" + ONE_STEP) == snapshot


def test_bad_step_name_explains_the_rule(snapshot: SnapshotAssertion) -> None:
    assert (
        errors_of(HEAD + "steps:\n  - name: Train\n    cells: 1\n  - name: 2nd\n    cells: 2\n") == snapshot
    )


def test_bad_pipeline_name_mentions_the_kubernetes_rule(snapshot: SnapshotAssertion) -> None:
    assert (
        errors_of("version: 1\nnotebook: nb.ipynb\npipeline: {name: Wine_Quality}\n" + ONE_STEP) == snapshot
    )


def test_too_long_pipeline_name_mentions_63_characters(snapshot: SnapshotAssertion) -> None:
    assert (
        errors_of(f"version: 1\nnotebook: nb.ipynb\npipeline: {{name: {'a' * 64}}}\n" + ONE_STEP) == snapshot
    )


def test_bad_quantity_shows_examples(snapshot: SnapshotAssertion) -> None:
    text = HEAD + "  resources: {cpu: 2 cores, memory: 4GB, memory_limit: 0, gpu: 0}\n" + ONE_STEP
    assert errors_of(text) == snapshot


def test_bad_duration_shows_examples(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD + "  timeout: 30 minutes\n" + ONE_STEP) == snapshot


def test_value_outside_a_fixed_set_lists_the_choices(snapshot: SnapshotAssertion) -> None:
    text = (
        HEAD
        + ONE_STEP
        + "volumes: [{name: data, mount: /data, claim: c}]\nsnapshots:\n  - {volume: data, when: sometimes}\n"
    )
    assert errors_of(text) == snapshot


def test_unsupported_version_names_the_supported_one(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD.replace("version: 1", "version: 2") + ONE_STEP) == snapshot


def test_quoted_version_is_a_type_error_only(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD.replace("version: 1", 'version: "1"') + ONE_STEP) == snapshot


def test_selector_of_the_wrong_shape_gets_one_message(snapshot: SnapshotAssertion) -> None:
    text = HEAD + "prelude: true\nskip: 2.5\nsteps:\n  - name: a\n    cells: [[1, 2]]\n"
    assert errors_of(text) == snapshot


def test_selector_with_unknown_key_suggests_the_selector_key(snapshot: SnapshotAssertion) -> None:
    text = HEAD + "steps:\n  - name: a\n    cells: {heding: Training}\n  - name: b\n    cells: {section: X}\n"
    assert errors_of(text) == snapshot


def test_selector_mistakes_inside_lists_and_ranges_are_located_precisely(snapshot: SnapshotAssertion) -> None:
    text = (
        HEAD + "steps:\n  - name: a\n    cells: [1, {from: {heding: A}}]\n  - name: b\n    cells: {id: 5}\n"
    )
    assert errors_of(text) == snapshot


def test_selector_details_are_explained(snapshot: SnapshotAssertion) -> None:
    text = HEAD + (
        "parameters: {cells: 0}\nprelude: '3..6'\nskip: {to: 4}\n"
        "steps:\n  - name: a\n    cells: []\n  - name: b\n    cells: {id: x, heading: y}\n"
    )
    assert errors_of(text) == snapshot


def test_volume_needs_exactly_one_of_claim_or_create(snapshot: SnapshotAssertion) -> None:
    text = (
        HEAD
        + ONE_STEP
        + (
            "volumes:\n"
            "  - {name: both, mount: /a, claim: c, create: {size: 1Gi}}\n"
            "  - {name: neither, mount: /b}\n"
            "  - {name: fine, mount: /c, create: {size: 1Gi}}\n"
        )
    )
    assert errors_of(text) == snapshot


def test_empty_steps_needs_at_least_one_step(snapshot: SnapshotAssertion) -> None:
    assert errors_of(HEAD + "steps: []\n") == snapshot


def test_bad_mapping_keys_are_located_at_the_key(snapshot: SnapshotAssertion) -> None:
    text = (
        HEAD
        + (
            "  env: {1BAD: x, GOOD: y}\n  labels: {bad key!: x}\n"
            "parameters:\n  values: {class: 1, learning-rate: 0.1, ok: 2}\n"
        )
        + ONE_STEP
    )
    assert errors_of(text) == snapshot


def test_repeated_list_items_are_located_at_the_repeat(snapshot: SnapshotAssertion) -> None:
    text = HEAD + "  packages: [pandas, numpy, pandas]\n" + ONE_STEP + "    after: [x, x]\n"
    assert errors_of(text) == snapshot


def test_document_that_is_not_a_mapping(snapshot: SnapshotAssertion) -> None:
    assert errors_of("- version: 1\n") == snapshot


def test_several_errors_are_reported_at_once_in_line_order(snapshot: SnapshotAssertion) -> None:
    text = """\
        version: 1
        notebook: nb.ipynb
        pipeline:
          name: Demo
          imgae: python:3.11
        steps:
          - name: load
            cells: {heading: Data}
            retries: many
          - name: train
            timeout: 1 hour
        snapshots:
          - {volume: data, when: never}
        """
    with pytest.raises(SchemaError) as info:
        check(document(text))
    lines = [d.line or 0 for d in info.value.diagnostics]
    assert len(lines) == 6
    assert lines == sorted(lines)
    assert "\n".join(str(d) for d in info.value.diagnostics) == snapshot


def test_one_diagnostic_per_path_and_cause() -> None:
    text = (
        HEAD + "prelude: [{id: 1, heding: x}, {heding: y}]\n" + ONE_STEP + "volumes: [{name: v, mount: /v}]\n"
    )
    with pytest.raises(SchemaError) as info:
        check(document(text))
    seen = [(d.key, d.message) for d in info.value.diagnostics]
    assert len(seen) == len(set(seen))
    assert sum("claim" in message for _, message in seen) == 1


def test_messages_never_leak_jsonschema_wording() -> None:
    text = (
        HEAD
        + "  resources: {cpu: [1]}\n  tolerations: [{operator: Sometimes}]\n"
        + "steps:\n  - name: a\n    cells: {}\n"
    )
    message = errors_of(text)
    for raw in (
        "is not valid under any of the given schemas",
        "is a required property",
        "Additional properties",
    ):
        assert raw not in message


# The invalid case folders used by the end-to-end harness


SCHEMA_CASES = sorted(p for p in CASES.glob("schema_*") if p.is_dir())


def test_there_are_schema_case_folders() -> None:
    assert len(SCHEMA_CASES) >= 6


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[p.name for p in SCHEMA_CASES])
def test_invalid_schema_case_fails_with_one_diagnostic(case: Path) -> None:
    sidecar = case / "pipeline.kale.yaml"
    assert (case / "nb.ipynb").is_file()
    doc = parse_document(sidecar.read_text(encoding="utf-8"), sidecar, "pipeline.kale.yaml")
    with pytest.raises(SchemaError) as info:
        check(doc)
    assert len(info.value.diagnostics) == 1


# Robustness

KEYS = st.sampled_from(["id", "heading", "from", "to", "name", "cells", "x"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, key=st.sampled_from(["cells", "resources", "timeout", "volumes", "env", "name"]))
def test_any_value_anywhere_gives_diagnostics_not_a_crash(value: Any, key: str) -> None:
    data = {
        "version": 1,
        "notebook": "nb.ipynb",
        "pipeline": {"name": "demo", key: value},
        "steps": [{"name": "a", "cells": value, key: value}],
        "volumes": [{"name": "v", "mount": "/v", key: value}],
    }
    try:
        check(Document(Path("pipeline.kale.yaml"), "pipeline.kale.yaml", data, {}))
    except SchemaError as error:
        assert all(d.message and "\n" not in d.message for d in error.diagnostics)
