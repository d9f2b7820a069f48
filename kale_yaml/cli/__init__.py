"""The command line: `arguments` (the grammar and every argument's help), `commands` (one function per
command), `reporters` (diagnostics as text, JSON or GitHub annotations; tables) and `main`, which ties them
together. Only this package imports `api`."""

from kale_yaml.cli.main import main

__all__ = ["main"]
