"""A step's `packages`, `image_packages` and `files`, merged with the `pipeline:` defaults and located.

`packages` may be `auto` or hold the entry `auto`: the step then also gets the distributions its own code
imports, pinned (plan/packages.py finds them). Explicit entries of the pipeline and the step add up, as
before; `image_packages` describe an image, so a step inherits the pipeline's only with the pipeline's image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kale_yaml.resolve.model import Needs, Setting
from kale_yaml.resolve.where import Where

AUTO = "auto"


def read_packages(
    raw: Mapping[str, Any], where: Where, pipeline: Mapping[str, Any], pipeline_where: Where
) -> tuple[tuple[str, ...], Needs]:
    """The step's explicit requirements (pipeline's first, each once) and its `Needs`."""
    auto = False
    listed: dict[str, Where] = {}
    for source, at in ((pipeline, pipeline_where), (raw, where)):
        value = source.get("packages")
        if value == AUTO:
            auto = True
            continue
        for index, requirement in enumerate(value or ()):
            if requirement.strip() == AUTO:
                auto = True
            else:
                listed.setdefault(requirement, at.child("packages", index))
    if "image_packages" in raw:
        image_packages = tuple(raw["image_packages"])
    elif "image" in raw:  # another image: what the pipeline's image has says nothing about it
        image_packages = ()
    else:
        image_packages = tuple(pipeline.get("image_packages") or ())
    files = [
        Setting(str(path), at.child("files", index))
        for source, at in ((pipeline, pipeline_where), (raw, where))
        for index, path in enumerate(source.get("files") or ())
    ]
    unique = {setting.value: setting for setting in reversed(files)}  # the pipeline's place wins
    ordered = tuple(unique[s.value] for s in files if unique[s.value] is s)
    needs = Needs(auto=auto, packages_at=tuple(listed.values()), image_packages=image_packages, files=ordered)
    return tuple(listed), needs
