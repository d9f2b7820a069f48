"""The pages' one Jinja2 environment (templates/report/), autoescaping everything."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from kale_yaml.resources import data_dir

# No script, no request: images are data: URIs, styles inline. The browser enforces it for any HTML a
# cell's output brings along.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_page(template: str, **context: Any) -> str:
    return _environment().get_template(f"report/{template}").render(csp=CSP, **context)
