"""The compiled pipeline is what a KFP backend accepts: every compiled `NAME.pipeline.yaml` of the valid cases
and the examples parses strictly (unknown fields rejected) into KFP's own protobuf messages.

The backend reads the first document as `PipelineSpec`, whose `deploymentSpec` is a
`PipelineDeploymentConfig`, and the second (when there is one) as `PlatformSpec`, whose Kubernetes executors
are kfp-kubernetes' `KubernetesExecutorConfig`. The last two travel as `google.protobuf.Struct` in the outer
messages, where any field passes, so each is parsed again into its own message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from kfp.kubernetes.kubernetes_executor_config_pb2 import KubernetesExecutorConfig
from kfp.pipeline_spec.pipeline_spec_pb2 import PipelineDeploymentConfig, PipelineSpec, PlatformSpec

from kale_yaml import api
from tests.conftest import REPO, CopyCase, case_dirs

FOLDERS = case_dirs("valid") + sorted(p.parent for p in (REPO / "examples").glob("*/pipeline.kale.yaml"))


def strictly(data: dict[str, Any], message: Message) -> Message:
    return json_format.ParseDict(data, message, ignore_unknown_fields=False)


def compiled_documents(folder: Path, out: Path) -> list[dict[str, Any]]:
    result = api.build(folder, out)
    return list(yaml.safe_load_all(result.yaml_path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_compiled_pipeline_parses_strictly_into_kfp_messages(
    folder: Path, copy_case: CopyCase, tmp_path: Path
) -> None:
    documents = compiled_documents(copy_case(folder), tmp_path / "out")
    assert 1 <= len(documents) <= 2
    pipeline = documents[0]
    spec = strictly(pipeline, PipelineSpec())
    assert isinstance(spec, PipelineSpec) and spec.root.dag.tasks
    deployment = strictly(pipeline["deploymentSpec"], PipelineDeploymentConfig())
    assert isinstance(deployment, PipelineDeploymentConfig)
    executors_used = {c["executorLabel"] for c in pipeline["components"].values() if "executorLabel" in c}
    assert executors_used == set(deployment.executors)
    if len(documents) == 2:
        platform = strictly(documents[1], PlatformSpec())
        assert isinstance(platform, PlatformSpec) and set(platform.platforms) == {"kubernetes"}
        kubernetes = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert set(kubernetes) <= set(deployment.executors)
        for config in kubernetes.values():
            strictly(config, KubernetesExecutorConfig())


def test_strict_parsing_rejects_a_field_kfp_does_not_know(copy_case: CopyCase, tmp_path: Path) -> None:
    """The test above would pass on anything if unknown fields were ignored."""
    documents = compiled_documents(copy_case(REPO / "tests/cases/valid/cluster_everything"), tmp_path / "out")
    executor = next(iter(documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()))
    with pytest.raises(json_format.ParseError, match="nodeSelectr"):
        strictly({**executor, "nodeSelectr": {}}, KubernetesExecutorConfig())
    with pytest.raises(json_format.ParseError, match="componentz"):
        strictly({**documents[0], "componentz": {}}, PipelineSpec())
