"""The baseline of the `run` section: a chain of trivial steps written by hand with KFP's DSL, run locally.

Each step reads an int artifact from the previous step, adds 1 and writes it; the first step starts from the
pipeline parameter `start`. It is what a KFP user would write for the notebook that
bench.notebooks.chain_project generates (`x = start + 1`, then `x = x + 1` per step), run the way
`kale-yaml run` runs: kfp.local with the SubprocessRunner in this environment (no venv).

    python bench/handwritten.py --steps 10 --root /tmp/somewhere
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as types.

import argparse
from collections.abc import Callable
from typing import Any

from kfp import dsl, local


@dsl.component(base_image="python:3.11-slim")  # type: ignore[untyped-decorator]
def first(start: int, x: dsl.Output[dsl.Artifact]) -> None:
    with open(x.path, "w") as handle:
        handle.write(str(start + 1))


@dsl.component(base_image="python:3.11-slim")  # type: ignore[untyped-decorator]
def add_one(previous: dsl.Input[dsl.Artifact], x: dsl.Output[dsl.Artifact]) -> None:
    with open(previous.path) as handle:
        value = int(handle.read())
    with open(x.path, "w") as handle:
        handle.write(str(value + 1))


def chain(steps: int) -> Callable[..., Any]:
    """A pipeline of `steps` steps."""

    @dsl.pipeline(name=f"handwritten-chain-{steps}")  # type: ignore[untyped-decorator]
    def pipeline(start: int = 0) -> dsl.Artifact:
        task = first(start=start)
        task.set_caching_options(False)
        for _ in range(steps - 1):
            task = add_one(previous=task.outputs["x"])
            task.set_caching_options(False)
        return task.outputs["x"]

    return pipeline  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--root", required=True, help="pipeline_root: where the artifacts go")
    args = parser.parse_args(argv)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=args.root, raise_on_error=True)
    run = chain(args.steps)()
    with open(run.output.path) as handle:
        value = int(handle.read())
    if value != args.steps:
        raise SystemExit(f"expected x == {args.steps}, got {value}")
    print(f"x = {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
