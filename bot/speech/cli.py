"""Commands of this package, mounted on the ``billtalk`` command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
