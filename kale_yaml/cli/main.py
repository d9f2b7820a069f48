"""The `kale-yaml` command: parse the arguments, run the command, report what the input got wrong.

Exit status: 0 success, 1 the input is wrong or a run failed, 2 wrong usage, 128+N a run stopped by
signal N (130: SIGINT).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from kale_yaml.cli.arguments import build_parser
from kale_yaml.cli.commands import COMMANDS, EXIT_INPUT, EXIT_USAGE
from kale_yaml.cli.reporters import report
from kale_yaml.errors import KaleYamlError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except KaleYamlError as exc:
        report(exc.diagnostics, getattr(args, "format", "text"))
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
