"""Trust-and-safety commands: ``billtalk audit verify|export`` and ``billtalk risk train|score``.

JSON goes to stdout; logs to stderr.

* ``billtalk audit verify`` checks the audit log's hash chain: exit 0 and
  ``{"ok": true, "entries": n, "head": ...}`` when intact, exit 1 and
  ``{"ok": false, "first_bad": {"seq", "problem", "entry"}}`` otherwise.
  With ``--head FILE`` (written by ``audit anchor``) it also fails, ``problem``
  ``truncated`` or ``diverged``, when the chain no longer reaches that head:
  a hash chain alone cannot show that its newest entries were deleted.
* ``billtalk audit anchor --out FILE`` verifies the chain and writes its head
  (``{"seq", "hash", "written_at"}``) to a file outside the database.
* ``billtalk audit export [--out FILE]`` writes every entry as JSON lines.
* ``billtalk risk train [--out FILE]`` trains the IsolationForest on the
  community's payment history (each payment's features as of its own time).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from backend.service_layer.unit_of_work import UnitOfWork

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
risk_app = typer.Typer(help="Payment risk scoring.", no_args_is_help=True)


def _uow() -> UnitOfWork:
    from backend.bootstrap import ensure_database
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.settings import get_settings

    url = get_settings().database_url
    ensure_database(url)
    return UnitOfWork.from_url(url)


@audit_app.command("verify")
def audit_verify(
    head: Annotated[
        Path | None,
        typer.Option("--head", help="Anchor file from `audit anchor`: the chain must reach it."),
    ] = None,
) -> None:
    """Check the hash chain; exit 1 and name the first bad entry if it is broken."""
    from backend.service_layer import audit

    anchor = None
    if head is not None:
        try:
            data = json.loads(head.read_text(encoding="utf-8"))
            anchor = {"seq": int(data["seq"]), "hash": str(data["hash"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = {"ok": False, "error": f"unreadable anchor {head}: {type(exc).__name__}"}
            sys.stdout.write(json.dumps(problem) + "\n")
            raise typer.Exit(2) from exc
    result = audit.verify(_uow(), anchor)
    sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    if not result["ok"]:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    out: Annotated[Path, typer.Option("--out", help="The anchor file to write (replaced).")],
) -> None:
    """Verify the chain and write its head to ``--out`` (for ``audit verify --head``)."""
    from datetime import UTC, datetime

    from backend.service_layer import audit

    result = audit.verify(_uow())
    if not result["ok"]:  # never anchor a chain that is already broken
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
        raise typer.Exit(1)
    # An intact chain is numbered 1..n, so its head is entry n.
    anchor = {
        "seq": result["entries"],
        "hash": result["head"],
        "written_at": datetime.now(UTC).isoformat(),
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(anchor) + "\n", encoding="utf-8")
    tmp.replace(out)
    sys.stdout.write(json.dumps({"ok": True, "anchor": anchor, "file": str(out)}) + "\n")


@audit_app.command("export")
def audit_export(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Write every audit entry, oldest first, as JSON lines."""
    from backend.service_layer import audit

    stream = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for entry in audit.export(_uow()):
            stream.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    finally:
        if out:
            stream.close()


@risk_app.command("train")
def risk_train(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Model file (default: BILLTALK_BILLING_RISK_MODEL_PATH)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Train the payment anomaly model (IsolationForest) on the payment history."""
    from backend.adapters import risk_model
    from backend.service_layer import risk
    from backend.settings import get_billing_settings

    settings = get_billing_settings()
    rows = [f.vector() for f in risk.training_rows(_uow(), settings)]
    if len(rows) < 10:
        sys.stderr.write(f"not enough payments to train on ({len(rows)}); seed the demo first\n")
        raise typer.Exit(2)
    model = risk_model.train(rows, seed=seed)
    path = out or risk.model_path(settings)
    risk_model.save(model, path)
    sys.stdout.write(
        json.dumps({"model": str(path), "payments": len(rows), "q50": model.q50, "q99": model.q99})
        + "\n"
    )


def register(app: typer.Typer) -> None:
    """Add the trust-and-safety commands to ``app``."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(risk_app, name="risk")
