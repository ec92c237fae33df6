"""Commands of this package, mounted on the ``billtalk`` command line.

``billtalk chat --resident ID [--lang en|zh]``
    The terminal chat (CONTRACTS.md).
``billtalk log export --conversation ID [--raw]``
    A conversation's log as JSON (Rasa-like tracker events).
``billtalk log list --resident ID``
    The resident's conversations (id, channel, status), as JSON.
``billtalk handoff list``
    The conversations waiting for staff, one JSON object a line.
``billtalk handoff take --conversation ID --staff ID``
    Staff take a conversation over (the assistant goes quiet in it).
``billtalk handoff release --conversation ID --staff ID``
    Staff give a waiting conversation back to the assistant.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer

log_app = typer.Typer(help="The conversation log.", no_args_is_help=True)
handoff_app = typer.Typer(
    help="Human handoff: conversations waiting for staff, take over, release.",
    no_args_is_help=True,
)


def _store() -> Any:
    from billtalk.db import make_engine
    from billtalk.settings import get_settings
    from bot.settings import get_dialogue_settings
    from bot.store import ConversationStore, ensure_schema

    url = get_dialogue_settings().database_url or get_settings().database_url
    ensure_schema(url)
    return ConversationStore(make_engine(url))


def chat(
    resident: Annotated[str, typer.Option("--resident", help="The resident to chat as.")],
    lang: Annotated[str, typer.Option("--lang", help="Default reply language: en or zh.")] = "en",
) -> None:
    """Chat with the assistant in the terminal (one message a line on stdin)."""
    import asyncio

    if lang not in ("en", "zh"):
        typer.echo("error: --lang must be en or zh", err=True)
        raise typer.Exit(2)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    async def _run() -> int:
        from actions.errors import BillingError, NotFound
        from backend.client import BillingClient
        from bot.channels.terminal import run_chat
        from bot.engine import DialogueEngine

        billing = BillingClient.embedded()
        try:
            try:  # before loading the NLU model, so a typo fails fast
                await billing.get_resident(resident)
            except NotFound:
                from billtalk.settings import get_settings

                typer.echo(
                    f"error: unknown resident {resident!r} in the database "
                    f"{get_settings().database_label()} (set BILLTALK_DATABASE_URL or "
                    "BILLTALK_HOME to use another; `billtalk demo seed` creates demo residents)",
                    err=True,
                )
                return 2
            except BillingError as exc:
                typer.echo(f"error: billing backend: {exc}", err=True)
                return 2
            engine = await DialogueEngine.embedded(billing=billing)
            await run_chat(engine, resident, lang)
        finally:
            await billing.aclose()
        return 0

    code = asyncio.run(_run())
    if code:
        raise typer.Exit(code)


@log_app.command("export")
def log_export(
    conversation: Annotated[str, typer.Option("--conversation", help="Conversation id.")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Include the unmasked text (staff only).")
    ] = False,
) -> None:
    """Print a conversation's log as JSON events (Rasa tracker style)."""
    from bot.log_export import export_conversation

    data = export_conversation(_store(), conversation, raw=raw)
    if data is None:
        typer.echo(f"error: no conversation {conversation!r}", err=True)
        raise typer.Exit(2)
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@log_app.command("list")
def log_list(
    resident: Annotated[str, typer.Option("--resident", help="Resident id.")],
) -> None:
    """Print the resident's conversations as JSON."""
    rows = _store().find_conversations(resident)
    out = [
        {
            "conversation_id": r.id,
            "channel": r.channel,
            "status": r.status,
            "flagged": r.flagged,
            "turns": r.turns,
            "updated_at": r.updated_at.isoformat(),
        }
        for r in rows
    ]
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


@handoff_app.command("list")
def handoff_list() -> None:
    """Print the conversations waiting for staff, one JSON object a line (oldest first)."""
    from bot.handoff import waiting_conversations

    for item in waiting_conversations(_store()):
        sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")


_CONVERSATION = typer.Option("--conversation", help="Conversation id.")
_STAFF = typer.Option("--staff", help="Your staff id (recorded in the conversation log).")


def _handoff(action: str, conversation: str, staff: str) -> None:
    from bot import handoff

    store = _store()
    row = store.get_conversation(conversation)
    if row is None:
        typer.echo(f"error: no conversation {conversation!r}", err=True)
        raise typer.Exit(2)
    if action == "release" and row.status != handoff.WAITING:
        typer.echo(
            f"error: conversation {conversation!r} is not waiting for staff "
            f"(status {row.status}); nothing changed",
            err=True,
        )
        raise typer.Exit(1)
    change = handoff.take_over if action == "take" else handoff.release
    try:
        change(store, conversation, staff)
    except ValueError as exc:
        typer.echo(f"error: --staff: {exc}", err=True)
        raise typer.Exit(2) from exc
    after = store.get_conversation(conversation)
    status = after.status if after is not None else None
    out = {"conversation_id": conversation, "status": status, "staff_id": staff.strip()}
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


@handoff_app.command("take")
def handoff_take(
    conversation: Annotated[str, _CONVERSATION],
    staff: Annotated[str, _STAFF],
) -> None:
    """Take a conversation over: the assistant stops answering in it until it is released."""
    _handoff("take", conversation, staff)


@handoff_app.command("release")
def handoff_release(
    conversation: Annotated[str, _CONVERSATION],
    staff: Annotated[str, _STAFF],
) -> None:
    """Give a conversation waiting for staff back to the assistant."""
    _handoff("release", conversation, staff)


pin_app = typer.Typer(help="Residents' step-up PINs (staff).", no_args_is_help=True)


@pin_app.command("code")
def pin_code(
    resident: Annotated[str, typer.Option("--resident", help="The resident who asked.")],
) -> None:
    """Issue a fresh one-time code that lets the resident set a PIN in the chat (staff).

    The resident says "set up a PIN" and sends the code; it works once, for that
    resident only, within the link-code lifetime (15 minutes by default). Prints
    ``{"resident_id", "code", "expires_at"}``; an unknown resident exits 2.
    """
    import asyncio

    async def _issue() -> int:
        from actions.errors import NotFound
        from backend.client import BillingClient
        from billtalk.settings import get_settings

        billing = BillingClient.embedded()
        try:
            issued = await billing.create_link_code(resident)
        except NotFound:
            typer.echo(
                f"error: unknown resident {resident!r} in the database "
                f"{get_settings().database_label()}",
                err=True,
            )
            return 2
        finally:
            await billing.aclose()
        typer.echo(
            json.dumps(
                {
                    "resident_id": issued.resident_id,
                    "code": issued.code,
                    "expires_at": issued.expires_at.isoformat(),
                }
            )
        )
        return 0

    code = asyncio.run(_issue())
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("chat")(chat)
    app.add_typer(pin_app, name="pin")
    app.add_typer(log_app, name="log")
    app.add_typer(handoff_app, name="handoff")
