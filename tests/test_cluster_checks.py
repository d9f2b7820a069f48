"""Cluster keys checked where kfp or Kubernetes would reject what the schema allows (located errors), value
conversions, volume plans that need no exit handler or several deletions, and hostile strings."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError
from kale_yaml.resolve.cluster import ClusterError, cpu_text, duration_seconds, env_text
from tests.conftest import CASES, CopyCase
from tests.test_cluster import EVERYTHING, tasks_of
from tests.test_hostile import HOSTILE


@pytest.mark.parametrize(
    ("value", "text"), [(2, "2"), (0.5, "0.5"), (1e-3, "0.001"), (2.0, "2"), (1e20, "100000000000000000000")]
)
def test_cpu_numbers_become_kfp_strings(value: float, text: str) -> None:
    assert cpu_text(value) == text


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400)]
)
def test_durations_become_seconds(value: int | str, seconds: int) -> None:
    assert duration_seconds(value) == seconds


def test_env_values_become_text() -> None:
    assert [env_text(v) for v in (True, False, 4, 1.5, "x")] == ["true", "false", "4", "1.5", "x"]


def everything_with(copy_case: CopyCase, change: dict[str, Any]) -> Path:
    """The cluster_everything case with `change` applied: {"steps.1.resources": {...}} sets that key."""
    folder = copy_case(EVERYTHING)
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    sidecar.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"steps.1.resources": {"cpu": "2", "cpu_limit": "500m"}},
            "steps[1].resources.cpu_limit: the limit 500m is less than the request (cpu: 2); Kubernetes"
            " rejects a limit below it",
        ),
        (
            {"steps.1.resources": {"memory": "8Gi", "memory_limit": "4Gi"}},
            "steps[1].resources.memory_limit: the limit 4Gi is less than the request (memory: 8Gi)",
        ),
        (
            {"steps.1.resources": {"cpu": 0.0005}},
            "steps[1].resources.cpu: 0.0005 CPU is 0.5m; Kubernetes counts CPU in whole millicores",
        ),
        (
            {"pipeline.resources": {"cpu": "0m"}},
            "pipeline.resources.cpu: 0m CPU: a CPU amount must be more than 0",
        ),
        (
            {"steps.1.resources": {"memory": "0"}},
            "steps[1].resources.memory: 0: an amount of memory must be more",
        ),
        ({"pipeline.timeout": "0s"}, "pipeline.timeout: a timeout must be at least 1 second"),
        (
            {"steps.1.env": {"AWS_ACCESS_KEY_ID": "x"}},
            "steps[1].secrets[0].env: AWS_ACCESS_KEY_ID is already set by steps[1].env.AWS_ACCESS_KEY_ID; an"
            " environment variable gets one value",
        ),
        (
            {"pipeline.env": {"KALE_YAML_EVENTS": "x"}},
            "pipeline.env.KALE_YAML_EVENTS: KALE_YAML_EVENTS: names starting with KALE_YAML_ are kale-yaml's",
        ),
        (
            {"steps.1.tolerations": [{"operator": "Equal", "value": "x"}]},
            "steps[1].tolerations[0]: a toleration without a key must use operator: Exists",
        ),
        (
            {"steps.1.tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]},
            "steps[1].tolerations[0].value: with operator: Exists a toleration takes no value",
        ),
        (
            {"steps.1.tolerations": [{"key": "gpu", "effect": "NoSchedule", "toleration_seconds": 5}]},
            "steps[1].tolerations[0].toleration_seconds: toleration_seconds needs effect: NoExecute",
        ),
        (
            {"steps.1.tolerations": [{"key": "bad key!", "operator": "Exists"}]},
            "steps[1].tolerations[0].key: 'bad key!' is not a valid taint key",
        ),
        (
            {"volumes.1.mount": "/var/tmp/"},
            "volumes[1].mount: volume 'data' is mounted at /var/tmp too; a path holds one volume",
        ),
        (
            {"volumes.1.create": {"size": "0"}},
            "volumes[1].create.size: 0: a size must be more than 0",
        ),
        (
            {"snapshots.1": {"volume": "scratch", "when": "before_each_step"}},
            "snapshots[1]: volume 'scratch' already has a before_each_step snapshot (snapshots[0])",
        ),
    ],
)
def test_values_kfp_or_kubernetes_would_reject_are_located_errors(
    change: dict[str, Any], expected: str, copy_case: CopyCase
) -> None:
    folder = everything_with(copy_case, change)
    with pytest.raises(ClusterError) as caught:
        api.build(folder)
    diagnostics = caught.value.diagnostics
    assert all(d.line is not None and d.file.endswith("pipeline.kale.yaml") for d in diagnostics), diagnostics
    assert any(f"{d.key}: {d.message}".startswith(expected) for d in diagnostics), [
        str(d) for d in diagnostics
    ]
    assert not (folder / ".kale").exists()


def test_an_error_exits_one_from_build(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = everything_with(copy_case, {"pipeline.timeout": "0s"})
    assert main(["build", str(folder)]) == 1
    err = capsys.readouterr().err
    assert re.search(
        r"pipeline\.kale\.yaml:\d+:\d+: pipeline\.timeout: a timeout must be at least 1 second", err
    )


def test_a_step_named_after_run_cannot_share_the_snapshot_folder(copy_case: CopyCase) -> None:
    folder = everything_with(copy_case, {"steps.1.name": "after_run"})
    with pytest.raises(ClusterError, match=r"steps\[1\]\.name: step 'after_run' and an after_run snapshot"):
        api.build(folder)


def test_several_volumes_made_for_the_run_are_deleted_by_one_exit_pipeline(copy_case: CopyCase) -> None:
    folder = everything_with(copy_case, {"volumes.2.create": {"size": "2Gi"}})
    result = api.build(folder)
    spec = yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8")).__next__()
    tasks = tasks_of(spec)
    assert tasks["delete volumes"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert {"delete volume scratch", "delete volume restored"} <= set(tasks)
    create = tasks["create volume restored"]["inputs"]["parameters"]
    assert "storage_class_name" not in create  # the cluster's default class is KFP's to choose
    assert create["access_modes"]["runtimeValue"]["constant"] == ["ReadWriteOnce"]


def test_kept_volumes_need_no_exit_handler(copy_case: CopyCase) -> None:
    keep = {"size": "1Gi", "keep": True}
    folder = everything_with(copy_case, {"volumes.1.create": keep})
    source = api.generate(api.validate(folder))
    assert "ExitHandler" not in source and "DeletePVC" not in source
    assert "pvc_name=scratch_volume.outputs['name']" in source
    result = api.build(folder)
    spec = next(yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8")))
    assert "create volume scratch" in tasks_of(spec)


def test_pipelines_without_cluster_keys_do_not_import_kubernetes() -> None:
    source = api.generate(api.validate(CASES / "valid" / "after_edge"))
    assert "from kfp import compiler, dsl\n" in source


def _calls(source: str) -> set[str]:
    return {ast.unparse(node.func) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_strings_in_cluster_keys_reach_the_compiled_pipeline_unchanged(
    text: str, copy_case: CopyCase
) -> None:
    plain = _calls(api.generate(api.validate(EVERYTHING)))
    plain_local = _calls(api.generate(api.validate(EVERYTHING), local=True))
    folder = everything_with(
        copy_case,
        {
            "steps.1.annotations": {"owner": text},
            "steps.1.env": {"LOG_LEVEL": text},
            "steps.1.resources": {"gpu": 1, "gpu_type": text},
            "volumes.1.mount": f"/{text}",
            "volumes.1.create": {"size": "1Gi", "storage_class": text},
        },
    )
    result = api.build(folder)
    assert _calls(result.python_path.read_text(encoding="utf-8")) <= plain  # no call the plain case lacks
    assert _calls(api.generate(api.validate(folder), local=True)) <= plain_local
    spec, platform = yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8"))
    train = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-step"]
    assert train["podMetadata"]["annotations"]["owner"] == text
    assert f"/{text}" in [m["mountPath"] for m in train["pvcMount"]]
    container = spec["deploymentSpec"]["executors"]["exec-train-step"]["container"]
    assert container["env"] == [{"name": "LOG_LEVEL", "value": text}]
    assert container["resources"]["accelerator"]["resourceType"] == text
    create = tasks_of(spec)["create volume scratch"]["inputs"]["parameters"]
    assert create["storage_class_name"]["runtimeValue"]["constant"] == text


def test_validate_finds_cluster_problems_without_rendering(copy_case: CopyCase) -> None:
    from kale_yaml.resolve.cluster import cluster_problems

    assert cluster_problems(api.validate(EVERYTHING).config) == []
    change = {"pipeline.env": {"KALE_YAML_X": "1"}, "steps.1.resources": {"cpu": "0"}}
    with pytest.raises(KaleYamlError) as caught:
        api.validate(everything_with(copy_case, change))
    # load and evaluate inherit pipeline.env: its problem is reported once
    assert [d.key for d in caught.value.diagnostics] == ["pipeline.env.KALE_YAML_X", "steps[1].resources.cpu"]


def test_a_local_run_lists_the_cluster_only_settings_it_ignores() -> None:
    from kale_yaml.run.local import ignored_settings

    notes = ignored_settings(api.validate(EVERYTHING).pipeline)
    assert notes[:4] == [
        "pipeline: resources, retries, timeout, secrets, node_selector, tolerations, labels, annotations"
        " (cluster only)",
        "step 'load': volumes (locally every step sees every volume's path)",
        "step 'train': resources, retries, timeout, secrets, node_selector, tolerations, labels, annotations"
        " (cluster only)",
        "step 'evaluate': resources, timeout (cluster only)",
    ]
