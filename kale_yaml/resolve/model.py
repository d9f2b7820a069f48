"""The resolve stage's value: the sidecar resolved against the notebook, every setting typed, defaults merged,
and located by a `Where`, so that no later stage reads the YAML document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from kale_yaml.load.cells import Notebook
from kale_yaml.resolve.where import Where

ParameterValue = bool | int | float | str | list[Any] | dict[str, Any]
V = TypeVar("V")
Pairs = tuple[tuple[str, str], ...]  # a mapping of text to text, in the order written


@dataclass(frozen=True)
class Parameter:
    name: str
    default: ParameterValue
    type_name: str  # "bool" | "int" | "float" | "str" | "list" | "dict"
    cell: int | None  # the notebook cell it came from; None when only `values:` declares it


@dataclass(frozen=True)
class Setting(Generic[V]):
    """A value and where it is written: the step's own key, or the `pipeline:` default it inherits."""

    value: V
    where: Where


@dataclass(frozen=True)
class Resources:
    cpu: str | None = None  # CPU amounts as kfp takes them: "500m", "2", "0.5"
    cpu_limit: str | None = None
    memory: str | None = None  # memory as kfp and Kubernetes take it: "4Gi", or a number of bytes as text
    memory_limit: str | None = None
    gpu: int | None = None
    gpu_type: str | None = None


@dataclass(frozen=True)
class SecretEnv:
    """One key of a Kubernetes Secret exposed as one environment variable."""

    secret: str
    key: str
    env: str


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


@dataclass(frozen=True)
class Cluster:
    """A step's cluster settings: each key its own, else the `pipeline:` default for every step."""

    resources: Setting[Resources] | None = None
    retries: int = 0
    timeout: Setting[int] | None = None  # seconds
    env: Setting[Pairs] | None = None  # values as text
    secrets: tuple[Setting[SecretEnv], ...] = ()
    node_selector: Pairs = ()
    tolerations: tuple[Setting[Toleration], ...] = ()
    labels: Pairs = ()
    annotations: Pairs = ()


@dataclass(frozen=True)
class Needs:
    """What a step's code needs where it runs, as the sidecar says: `packages`, `image_packages`, `files`."""

    auto: bool = False  # `packages: auto`, or `auto` in the list: the step's own imports are added, pinned
    packages_at: tuple[Where, ...] = ()  # where each of StepConfig.packages is written
    image_packages: tuple[str, ...] = ()  # distributions the step's image has
    files: tuple[Setting[str], ...] = ()  # relative paths the cells open, the pipeline's then the step's


@dataclass(frozen=True)
class StepConfig:
    """A step as the sidecar describes it, with its cells resolved to numbers and its settings merged."""

    name: str
    index: int  # position in `steps:`
    where: Where  # `steps[index]`: its keys are located below it
    cells: tuple[int, ...]  # code cells this step runs, in notebook order (skipped cells removed)
    after: tuple[str, ...]
    inputs: tuple[str, ...] | None  # explicit `inputs:` (added to what analysis finds)
    outputs: tuple[str, ...] | None  # explicit `outputs:`
    image: str
    packages: tuple[str, ...]  # explicit pip requirements, the pipeline's then the step's (`auto` left out)
    cache: bool
    report: bool  # the step writes an HTML report of its cells' outputs (an output artifact)
    cluster: Cluster
    volumes: tuple[str, ...] | None  # the volumes it mounts, as written; None: every declared volume
    cluster_keys: tuple[str, ...]  # the cluster-only keys the step writes itself (not inherited)
    needs: Needs = field(default_factory=Needs)


@dataclass(frozen=True)
class Metrics:
    step: str
    names: tuple[str, ...]
    where: Where  # `metrics`


@dataclass(frozen=True)
class NewClaim:
    """`create:`: a PersistentVolumeClaim made for the run."""

    size: str  # as Kubernetes takes it: "10Gi", or a number of bytes as text
    access_modes: tuple[str, ...]
    storage_class: str | None
    from_snapshot: str | None
    keep: bool


@dataclass(frozen=True)
class VolumeConfig:
    name: str
    index: int  # position in `volumes:`
    mount: str
    claim: str | None  # an existing claim; None for a volume made for the run
    create: NewClaim | None
    where: Where  # `volumes[index]`


@dataclass(frozen=True)
class SnapshotConfig:
    volume: str
    when: str  # "before_each_step" | "after_run"
    where: Where  # `snapshots[i]`


@dataclass(frozen=True)
class Config:
    """The sidecar resolved against the notebook: who owns which cell, and every setting."""

    where: Where  # the sidecar itself: its file name, and where each top-level key is written
    notebook: Notebook
    notebook_name: str  # the `notebook:` key as written
    name: str
    description: str | None
    experiment: str | None
    image: str  # `pipeline.image` or the default: the image of components that are not steps
    parameters: tuple[Parameter, ...]
    parameter_cells: tuple[int, ...]
    prelude: tuple[int, ...]
    skipped: tuple[int, ...]
    steps: tuple[StepConfig, ...]
    metrics: Metrics | None
    volumes: tuple[VolumeConfig, ...]
    snapshots: tuple[SnapshotConfig, ...]
    cluster_defaults: tuple[str, ...]  # the cluster-only keys `pipeline:` sets for every step
    steps_by_name: Mapping[str, StepConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the mapping is made once here, from the steps it indexes.
        object.__setattr__(self, "steps_by_name", MappingProxyType({s.name: s for s in self.steps}))

    def step(self, name: str) -> StepConfig:
        return self.steps_by_name[name]
