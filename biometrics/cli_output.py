"""What `billtalk face` and `billtalk voice` share: JSON lines out, unknown residents refused."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer


def emit(obj: dict[str, Any]) -> None:
    """Write ``obj`` as one JSON line on stdout, flushed (callers read line by line)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def require_resident(resident: str, *, erasing: str | None = None) -> None:
    """Exit with 2 and ``{"error": {"code": "unknown_resident", ...}}`` for an unknown id.

    With ``erasing`` (a template kind), an id the billing records no longer
    hold is still accepted when the store has its template: erasure is never
    refused.
    """
    from biometrics.residents import UnknownResident, ensure_known_resident, holds_templates

    try:
        ensure_known_resident(resident)
    except UnknownResident as exc:
        if erasing is not None and holds_templates(resident, erasing):
            return
        emit({"error": exc.to_dict()})
        sys.stderr.write(f"error: {exc.message}\n")
        raise typer.Exit(2) from None
