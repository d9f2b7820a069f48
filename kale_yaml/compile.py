"""Compiling generated DSL with kfp, and writing outputs so that a failed build changes nothing.

kfp is imported here only: `validate` never reaches this module, which keeps it fast.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from kale_yaml import pyliteral
from kale_yaml.errors import BuildError, Diagnostic


def compile_source(source: str, function: str, display_name: str) -> str:
    """Import the generated module from a temporary file and compile its pipeline; return the YAML text.

    kfp reads each component's source with `inspect.getsource`, so the module must live in a real file.
    """
    from kfp import compiler

    with tempfile.TemporaryDirectory(prefix="kale-yaml-") as tmp:
        module_path = Path(tmp) / "generated_pipeline.py"
        module_path.write_text(source, encoding="utf-8")
        module_name = f"_kale_yaml_generated_{abs(hash(source))}"
        spec = importlib.util.spec_from_file_location(module_name, module_path)
        if spec is None or spec.loader is None:  # pragma: no cover - a real file always has a spec
            raise RuntimeError("cannot load generated module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            pipeline_func = getattr(module, function)
            yaml_path = Path(tmp) / "pipeline.yaml"
            compiler.Compiler().compile(pipeline_func, str(yaml_path))
            with open(yaml_path, encoding="utf-8", newline="") as compiled:  # keep a \r in a value as it is
                return _safe_header(compiled.read(), pipeline_func)
        except Exception as exc:
            # Generated code that kfp rejects is a bug in kale-yaml unless the input made it so; either
            # way the user needs the message, not a traceback into kfp.
            raise BuildError.single(
                Diagnostic(file=display_name, message=f"kfp could not compile the generated pipeline: {exc}")
            ) from exc
        finally:
            sys.modules.pop(module_name, None)


def _safe_header(text: str, pipeline_func: Any) -> str:
    """kfp starts the file with a comment listing the inputs and their defaults, pasted in unescaped: a
    default holding a line break would end the comment and break the YAML. Rewrite that comment so every
    line of it stays one comment line; the document itself is kfp's, unchanged."""
    from google.protobuf import json_format
    from kfp.compiler.pipeline_spec_builder import extract_comments_from_pipeline_spec

    spec = json_format.MessageToDict(pipeline_func.pipeline_spec)
    header = extract_comments_from_pipeline_spec(spec, pipeline_func.description)
    if not text.startswith(header):  # pragma: no cover - a kfp that writes another header: keep its file
        return text
    lines: list[str] = []
    for line in header.removesuffix("\n").split("\n"):
        if line.startswith("#") or not lines:
            lines.append(line)
        else:  # the rest of a value that held a line break: fold it back into its comment line
            lines[-1] += "\n" + line
    safe = "".join(pyliteral.comment(line) + "\n" for line in lines)
    return safe + text[len(header) :]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomically(files: dict[Path, str], display_name: str) -> None:
    """Write every file or none: each goes to a temporary file first, then all are renamed into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            staged.append((Path(tmp_name), target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        mode = 0o666 & ~_umask()  # mkstemp makes files only the owner can read; outputs are ordinary files
        for tmp, target in staged:
            os.chmod(tmp, mode)
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        where = exc.filename or display_name
        raise BuildError.single(
            Diagnostic(file=str(where), message=f"cannot write the pipeline: {exc.strerror or exc}")
        ) from None
