"""The command line: argument parsing and the reporters. Only this package imports `api`."""

from kale_yaml.cli.main import main

__all__ = ["main"]
