"""`results-realtime run` (placeholder until its component lands)."""

from __future__ import annotations

import argparse

HELP = "run (not implemented yet)"
DESCRIPTION = HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    del args
    raise NotImplementedError("run")
