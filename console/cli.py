"""Commands of this package, mounted on the ``billtalk`` command line.

``billtalk staff add --username U --role agent|supervisor|admin [--building B ...]``
    Create a staff account; the password is read from stdin (one line), never an argument.
``billtalk staff list``
    The accounts, one JSON object a line.
``billtalk staff disable --username U`` / ``billtalk staff enable --username U``
    Disable (ending its sessions) or re-enable an account.
``billtalk staff passwd --username U``
    Set a new password (read from stdin); the account's sessions end.
``billtalk nlu annotations export --out FILE``
    The console's annotation queue as Rasa ``nlu.yml`` (train with
    ``billtalk nlu train --data nlu/data FILE --out MODEL``).
``billtalk nlu annotations train --out MODEL [--data PATH ...] [--no-encoder]``
    Train a model from the shipped data (or ``--data``) plus the annotation queue.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

staff_app = typer.Typer(help="Staff console accounts.", no_args_is_help=True)
annotations_app = typer.Typer(help="The console's NLU annotation queue.", no_args_is_help=True)


def _engine() -> Any:
    from billtalk.db import make_engine
    from billtalk.settings import get_settings
    from console import audit
    from console.db import conversation_database_url, ensure_schema

    url = conversation_database_url()
    ensure_schema(url)
    engine = make_engine(url)
    billing_url = get_settings().database_url
    audit.link_chain(engine, engine if billing_url == url else make_engine(billing_url))
    return engine


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("password: ")
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _json(staff: Any) -> str:
    return json.dumps(
        {
            "id": staff.id,
            "username": staff.username,
            "role": staff.role,
            "buildings": list(staff.buildings),
            "disabled": staff.disabled,
        },
        ensure_ascii=False,
    )


@staff_app.command("add")
def add_command(
    username: Annotated[str, typer.Option("--username", help="The login name.")],
    role: Annotated[str, typer.Option("--role", help="agent, supervisor or admin.")],
    building: Annotated[
        list[str] | None,
        typer.Option("--building", help="A building the account sees (repeat; default: all)."),
    ] = None,
) -> None:
    """Create a staff account (the password is read from stdin, one line)."""
    from console import audit
    from console.accounts import AccountError, add_staff

    engine = _engine()
    try:
        staff = add_staff(engine, username, role, _read_password(), building or None)
    except AccountError as exc:
        raise _fail(str(exc)) from exc
    audit.record(engine, "cli", "staff_add", staff.username, {"role": staff.role})
    typer.echo(_json(staff))


@staff_app.command("list")
def list_command() -> None:
    """Every staff account, one JSON object a line."""
    from console.accounts import list_staff

    for staff in list_staff(_engine()):
        typer.echo(_json(staff))


def _set_disabled(username: str, disabled: bool) -> None:
    from console import audit
    from console.accounts import AccountError, set_disabled

    engine = _engine()
    try:
        staff = set_disabled(engine, username, disabled)
    except AccountError as exc:
        raise _fail(str(exc)) from exc
    audit.record(engine, "cli", "staff_disable" if disabled else "staff_enable", username)
    typer.echo(_json(staff))


@staff_app.command("disable")
def disable_command(
    username: Annotated[str, typer.Option("--username", help="The account.")],
) -> None:
    """Disable an account (its sessions end at once)."""
    _set_disabled(username, True)


@staff_app.command("enable")
def enable_command(
    username: Annotated[str, typer.Option("--username", help="The account.")],
) -> None:
    """Re-enable a disabled account."""
    _set_disabled(username, False)


@staff_app.command("passwd")
def passwd_command(
    username: Annotated[str, typer.Option("--username", help="The account.")],
) -> None:
    """Set a new password, read from stdin (one line); the account's sessions end."""
    from console import audit
    from console.accounts import AccountError, set_password

    engine = _engine()
    try:
        staff = set_password(engine, username, _read_password())
    except AccountError as exc:
        raise _fail(str(exc)) from exc
    audit.record(engine, "cli", "staff_passwd", username)
    typer.echo(_json(staff))


@annotations_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", help="The nlu.yml file to write.")],
) -> None:
    """Write the annotation queue as Rasa 3 ``nlu.yml`` (a turn annotated twice: the latest)."""
    from console import audit
    from console.annotations import write_export

    engine = _engine()
    n = write_export(engine, out)
    audit.record(engine, "cli", "export", "annotations", {"out": str(out), "examples": n})
    typer.echo(json.dumps({"out": str(out), "examples": n}))


@annotations_app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Base training data (default: the shipped nlu/data)."),
    ] = None,
    no_encoder: Annotated[
        bool, typer.Option("--no-encoder", help="TF-IDF only: no MiniLM embeddings.")
    ] = False,
) -> None:
    """Train a model from the base data plus the annotation queue (the queue as Rasa YAML)."""
    import tempfile

    import nlu
    from console.annotations import write_export
    from nlu.train import train

    engine = _engine()
    with tempfile.TemporaryDirectory() as tmp:
        queue = Path(tmp) / "annotations.yml"
        n = write_export(engine, queue)
        paths = [*(data or [nlu.DATA_DIR]), *([queue] if n else [])]
        model = train(paths, out, use_encoder=False if no_encoder else None)
    meta = model.metadata
    typer.echo(
        json.dumps(
            {
                "model": str(out),
                "examples": meta["training_data"]["examples"],
                "annotations": n,
                "intents": len(meta["training_data"]["intents"]),
            }
        )
    )


def register(app: typer.Typer) -> None:
    """Add ``billtalk staff ...`` and ``billtalk nlu annotations ...``."""
    app.add_typer(staff_app, name="staff")
    from nlu.cli import nlu_app

    nlu_app.add_typer(annotations_app, name="annotations")
