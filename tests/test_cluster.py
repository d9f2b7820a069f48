"""Cluster settings, volumes and snapshots: what the compiled YAML holds for every cluster key, snapshots of
the generated code and of the compiled YAML, and the generated VolumeSnapshot component run against a fake
Kubernetes client. Checks of values are in test_cluster_checks.py."""

from __future__ import annotations

import builtins
import importlib.util
import sys
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from tests.conftest import CASES, CopyCase
from tests.test_cases import reviewable

EVERYTHING = CASES / "valid" / "cluster_everything"
SOURCE_PLACEHOLDER = "<the component's source: see the generated .py snapshot>"


def compiled(copy_case: CopyCase) -> tuple[dict[str, Any], dict[str, Any]]:
    result = api.build(copy_case(EVERYTHING))
    spec, platform = yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8"))
    return spec, platform


def tasks_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of every DAG by its display name."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {task["taskInfo"]["name"]: task for dag in dags for task in dag["tasks"].values()}


def test_generated_local_variant_snapshot(code_snapshot: SnapshotAssertion) -> None:
    source = api.generate(api.validate(EVERYTHING), local=True)
    assert reviewable(source) == code_snapshot


def test_compiled_yaml_snapshot(copy_case: CopyCase, snapshot: SnapshotAssertion) -> None:
    result = api.build(copy_case(EVERYTHING))
    spec, platform = yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8"))
    for executor in spec["deploymentSpec"]["executors"].values():
        command = executor["container"].get("command") or [""]
        if "def " in command[-1]:
            command[-1] = SOURCE_PLACEHOLDER  # the component's whole source, already in the .py snapshot
    folded = yaml.safe_dump_all([spec, platform], sort_keys=True, width=110)
    assert folded == snapshot


def test_resources_defaults_and_overrides_reach_the_containers(copy_case: CopyCase) -> None:
    spec, _ = compiled(copy_case)
    executors = spec["deploymentSpec"]["executors"]
    load = executors["exec-load-step"]["container"]["resources"]
    assert (load["resourceCpuRequest"], load["resourceMemoryRequest"]) == ("500m", "1Gi")
    train = executors["exec-train-step"]["container"]["resources"]
    assert train["resourceCpuRequest"] == "2" and train["resourceCpuLimit"] == "4"
    assert train["resourceMemoryRequest"] == "4Gi" and train["resourceMemoryLimit"] == "8Gi"
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "1"
    evaluate = executors["exec-evaluate-step"]["container"]["resources"]
    assert evaluate == {"cpuRequest": 0.25, "resourceCpuRequest": "0.25"}  # a step's key replaces the default


def test_image_packages_and_env_reach_the_containers(copy_case: CopyCase) -> None:
    spec, _ = compiled(copy_case)
    executors = spec["deploymentSpec"]["executors"]
    train = executors["exec-train-step"]["container"]
    assert train["image"] == "python:3.11"
    assert "'pyyaml'" in train["command"][2] and "'dill'" in train["command"][2]
    assert executors["exec-load-step"]["container"]["image"] == "python:3.11-slim"
    assert train["env"] == [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "THREADS", "value": "4"},
        {"name": "FAST", "value": "true"},
    ]
    assert executors["exec-load-step"]["container"]["env"] == [{"name": "LOG_LEVEL", "value": "info"}]


def test_retries_and_caching_are_set_on_the_tasks(copy_case: CopyCase) -> None:
    spec, _ = compiled(copy_case)
    tasks = tasks_of(spec)
    assert {name: tasks[name]["retryPolicy"]["maxRetryCount"] for name in ("load", "train", "evaluate")} == {
        "load": 1,
        "train": 3,
        "evaluate": 1,
    }
    caching = {name: tasks[name].get("cachingOptions", {}).get("enableCache", False) for name in tasks}
    assert caching["load"] is True
    assert caching["evaluate"] is False  # cache: false
    assert caching["train"] is False  # it mounts a volume made for the run
    assert not any(caching[name] for name in tasks if name.startswith(("snapshot", "create", "delete")))


def test_scheduling_secrets_timeouts_and_pod_metadata_reach_the_platform_spec(copy_case: CopyCase) -> None:
    _, platform = compiled(copy_case)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    train, load, evaluate = (
        executors["exec-train-step"],
        executors["exec-load-step"],
        executors["exec-evaluate-step"],
    )
    assert [
        train["activeDeadlineSeconds"],
        load["activeDeadlineSeconds"],
        evaluate["activeDeadlineSeconds"],
    ] == [
        "90",
        "5400",
        "45",
    ]
    assert [(s["secretName"], s["keyToEnv"]) for s in train["secretAsEnv"]] == [
        ("s3-creds", [{"envVar": "AWS_ACCESS_KEY_ID", "secretKey": "access_key"}]),
        ("s3-creds", [{"envVar": "AWS_SECRET_ACCESS_KEY", "secretKey": "secret_key"}]),
    ]
    assert train["nodeSelector"]["labels"] == {"pool": "gpu", "example.com/zone": "a"}
    assert load["nodeSelector"]["labels"] == {"pool": "cpu"}
    assert train["tolerations"] == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "ml",
            "effect": "NoExecute",
            "tolerationSeconds": "60",
        },
    ]
    assert evaluate["tolerations"] == [{"key": "spot", "operator": "Exists"}]
    assert train["podMetadata"] == {
        "labels": {"team": "ml", "stage": "train"},
        "annotations": {"owner": "ml-platform"},
    }
    assert load["podMetadata"] == {"labels": {"team": "ml"}, "annotations": {"owner": "data-science"}}


def test_volumes_are_mounted_only_where_steps_ask(copy_case: CopyCase) -> None:
    _, platform = compiled(copy_case)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]

    def mounts(executor: str) -> list[str]:
        return [m["mountPath"] for m in executors[executor].get("pvcMount", [])]

    assert mounts("exec-load-step") == ["/var/tmp"]
    assert mounts("exec-train-step") == [
        "/var/tmp",
        "/tmp/kale-yaml-cluster-everything/scratch",
        "/tmp",
    ]
    assert mounts("exec-evaluate-step") == []
    assert (
        executors["exec-load-step"]["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"]
        == "team-data"
    )
    claim = executors["exec-train-step"]["pvcMount"][1]["pvcNameParameter"]["componentInputParameter"]
    assert claim == "pipelinechannel--scratch_claim"


def test_created_volumes_and_the_exit_handler_that_deletes_them(copy_case: CopyCase) -> None:
    spec, _ = compiled(copy_case)
    tasks = tasks_of(spec)
    scratch = tasks["create volume scratch"]["inputs"]["parameters"]
    assert {key: value["runtimeValue"]["constant"] for key, value in scratch.items()} == {
        "pvc_name_suffix": "-scratch",
        "access_modes": ["ReadWriteOnce"],
        "size": "1Gi",
        "storage_class_name": "standard",
    }
    restored = tasks["create volume restored"]["inputs"]["parameters"]
    assert restored["data_source"]["runtimeValue"]["constant"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": "scratch-after-run-0123",
    }
    assert restored["access_modes"]["runtimeValue"]["constant"] == ["ReadWriteMany"]
    # Only the volume without keep: true is deleted, by the exit task of the group holding every step.
    deletes = [name for name in tasks if name.startswith("delete volume ")]
    assert deletes == ["delete volume scratch"]
    delete = tasks["delete volume scratch"]
    assert delete["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert delete["inputs"]["parameters"]["pvc_name"] == {"componentInputParameter": "scratch_claim"}
    handler = spec["components"][f"comp-{delete['dependentTasks'][0]}"]["dag"]["tasks"]
    assert {t["taskInfo"]["name"] for t in handler.values()} >= {"load", "train", "evaluate"}
    steps = tasks["steps"]["inputs"]["parameters"]
    assert steps["scratch_claim"]["taskOutputParameter"]["producerTask"] == "createpvc"


def test_snapshots_run_before_the_steps_that_mount_the_volume_and_after_the_run(copy_case: CopyCase) -> None:
    spec, _ = compiled(copy_case)
    tasks = tasks_of(spec)
    before = tasks["snapshot scratch before train"]
    names = {key: task["taskInfo"]["name"] for key, task in _handler_tasks(spec).items()}
    assert [names[d] for d in before["dependentTasks"]] == ["load"]
    assert "snapshot-volume" in tasks["train"]["dependentTasks"]
    parameters = before["inputs"]["parameters"]
    assert parameters["name"]["runtimeValue"]["constant"] == "scratch-train"
    assert parameters["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert parameters["claim"]["componentInputParameter"] == "pipelinechannel--scratch_claim"
    after = tasks["snapshot scratch after the run"]
    assert {names[d] for d in after["dependentTasks"]} == {"load", "train", "evaluate"}
    assert "snapshot evaluate" not in tasks  # evaluate mounts no volume


def _handler_tasks(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]  # type: ignore[no-any-return]


def test_build_compiles_and_kfp_loads_it_back(copy_case: CopyCase) -> None:
    from kfp import components

    result = api.build(copy_case(EVERYTHING))
    loaded = components.load_component_from_file(str(result.yaml_path))
    assert loaded.name == "cluster-everything"


# ---------------------------------------------------------------- the generated VolumeSnapshot component


class _ApiException(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _CustomObjects:
    """A fake CustomObjectsApi: the snapshot becomes ready on the third look."""

    created: ClassVar[list[tuple[Any, ...]]] = []
    looks: ClassVar[int] = 0
    exists: ClassVar[bool] = False

    def create_namespaced_custom_object(self, *args: Any) -> None:
        type(self).created.append(args)
        if type(self).exists:
            raise _ApiException(409)

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        type(self).looks += 1
        if type(self).looks < 3:
            return {"status": {"readyToUse": False, "error": {"message": "snapshot controller is busy"}}}
        return {"status": {"readyToUse": True}}


def _snapshot_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    source = api.generate(api.validate(EVERYTHING))
    module_path = tmp_path / "generated_everything.py"
    module_path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("generated_everything", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    kubernetes = types.ModuleType("kubernetes")
    client = types.ModuleType("kubernetes.client")
    config = types.ModuleType("kubernetes.config")
    exceptions = types.ModuleType("kubernetes.client.exceptions")
    client.CustomObjectsApi = _CustomObjects  # type: ignore[attr-defined]
    config.load_incluster_config = lambda: None  # type: ignore[attr-defined]
    exceptions.ApiException = _ApiException  # type: ignore[attr-defined]
    kubernetes.client, kubernetes.config = client, config  # type: ignore[attr-defined]
    for name, fake in {
        "kubernetes": kubernetes,
        "kubernetes.client": client,
        "kubernetes.config": config,
        "kubernetes.client.exceptions": exceptions,
    }.items():
        monkeypatch.setitem(sys.modules, name, fake)
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("team-a\n", encoding="utf-8")
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/var/run/secrets/kubernetes.io/serviceaccount/namespace":
            file = namespace_file
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(time, "sleep", lambda _: None)
    _CustomObjects.created, _CustomObjects.looks, _CustomObjects.exists = [], 0, False
    return module.snapshot_volume.python_func


def test_snapshot_component_creates_a_volume_snapshot_and_waits_until_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make = _snapshot_function(tmp_path, monkeypatch)
    name = make(claim="team-data", name="data-train", run_id="1234-abcd", labels={"kale-yaml/volume": "data"})
    assert name == "data-train-1234-abcd"
    ((group, version, namespace, plural, body),) = _CustomObjects.created
    assert (group, version, namespace, plural) == (
        "snapshot.storage.k8s.io",
        "v1",
        "team-a",
        "volumesnapshots",
    )
    assert body == {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": "data-train-1234-abcd",
            "labels": {"kale-yaml/volume": "data", "kale-yaml/run-id": "1234-abcd"},
        },
        "spec": {"source": {"persistentVolumeClaimName": "team-data"}},
    }
    assert _CustomObjects.looks == 3
    out = capsys.readouterr().out
    assert "snapshot controller is busy" in out and "is ready to use" in out


def test_snapshot_component_retried_finds_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = _snapshot_function(tmp_path, monkeypatch)
    _CustomObjects.exists = True
    assert make(claim="c", name="n", run_id="r", labels={}) == "n-r"
