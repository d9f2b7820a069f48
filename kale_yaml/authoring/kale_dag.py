"""Kale's DAG, made of `prev:` tags alone, beside the pipeline kale-yaml plans from the data flow: the edges
an imported notebook gains, for `import-kale` to warn about once the new sidecar validates."""

from __future__ import annotations

from kale_yaml import diagnostics as ky
from kale_yaml.authoring.kale_import import KaleImport
from kale_yaml.errors import Diagnostic
from kale_yaml.plan.dag import Pipeline


def dependency_warnings(result: KaleImport, pipeline: Pipeline) -> list[Diagnostic]:
    """Data edges of the planned pipeline that Kale's `prev:` tags do not imply."""
    ancestors = kale_ancestors(result)
    found: list[Diagnostic] = []
    for edge in pipeline.edges:
        if edge.variables and edge.source not in ancestors.get(edge.target, set()):
            names = ", ".join(edge.variables)
            message = (
                f"step '{edge.target}' reads {names} from step '{edge.source}', which no prev: tag puts"
                " before it: Kale would not pass the value; kale-yaml adds the edge"
            )
            found.append(ky.KALE_DATA_EDGE.at(pipeline.config.notebook.display_name, message))
    return found


def kale_ancestors(result: KaleImport) -> dict[str, set[str]]:
    """For each step, every step Kale runs before it (the transitive closure of the prev: tags)."""
    parents: dict[str, set[str]] = {name: set() for name in result.steps}
    for before, after in result.prev_edges:
        parents.setdefault(after, set()).add(before)
    closure: dict[str, set[str]] = {}

    def visit(name: str, seen: frozenset[str]) -> set[str]:
        if name not in closure:
            found: set[str] = set()
            for parent in parents.get(name, set()) - seen:
                found |= {parent, *visit(parent, seen | {name})}
            closure[name] = found
        return closure[name]

    for name in parents:
        visit(name, frozenset())
    return closure
