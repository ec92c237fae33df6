"""``billtalk telegram ...``: run the Telegram bot and register its webhook.

``billtalk telegram run [--mode polling|webhook] [--host H] [--port P]``
    Polling (development, small sites): ``getMe``, ``deleteWebhook``, then
    ``getUpdates`` until Ctrl-C. Webhook: serve ``POST /telegram/webhook`` (and
    ``/healthz``) on HOST:PORT; ``billtalk serve`` serves the same route inside the
    product app.
``billtalk telegram set-webhook --url URL``
    Register URL with Telegram, with the webhook's secret token (derived from
    ``BILLTALK_SECRET_KEY``, or ``BILLTALK_TELEGRAM_WEBHOOK_SECRET``).
``billtalk telegram delete-webhook``
    Go back to polling.

Every command needs ``BILLTALK_TELEGRAM_TOKEN``; the token never appears in
output or logs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # imported lazily at run time: `billtalk --help` stays fast
    from telegram import Bot

    from bot.channels.telegram.settings import TelegramSettings

telegram_app = typer.Typer(
    help="The Telegram bot: run it, register its webhook.", no_args_is_help=True
)


def _settings() -> TelegramSettings:
    from bot.channels.telegram.masking import install_token_masking
    from bot.channels.telegram.settings import get_telegram_settings

    settings = get_telegram_settings()
    if not settings.token:
        typer.echo(
            "error: BILLTALK_TELEGRAM_TOKEN is not set. Create a bot with @BotFather, then\n"
            "  export BILLTALK_TELEGRAM_TOKEN=123456:ABC...\n"
            "and run this command again (see docs/telegram.md).",
            err=True,
        )
        raise typer.Exit(2)
    install_token_masking(settings.token, settings.webhook_secret)
    return settings


@telegram_app.command("run")
def run(
    mode: Annotated[str, typer.Option("--mode", help="polling or webhook.")] = "polling",
    host: Annotated[str, typer.Option(help="Webhook mode: interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Webhook mode: port to listen on.")] = 8081,
) -> None:
    """Run the bot: long polling, or a webhook server."""
    if mode not in ("polling", "webhook"):
        typer.echo("error: --mode must be polling or webhook", err=True)
        raise typer.Exit(2)
    settings = _settings()
    if mode == "webhook":
        import uvicorn

        from bot.channels.telegram.webhook import create_app

        # No access log: a line per update is CPU the turn needs (errors are still logged).
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            access_log=False,
        )
        return
    from bot.channels.telegram.masking import mask_token

    try:
        asyncio.run(_polling(settings))
    except Exception as exc:
        typer.echo(f"error: {mask_token(f'{type(exc).__name__}: {exc}')}", err=True)
        raise typer.Exit(1) from None


async def _polling(settings: TelegramSettings) -> None:
    from bot.channels.telegram.app import run_polling
    from bot.engine import DialogueEngine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = await DialogueEngine.embedded()
    try:
        await run_polling(engine, settings, stop)
    finally:
        await engine.billing.aclose()


def _bot(settings: TelegramSettings) -> Bot:
    from telegram import Bot

    return Bot(
        settings.token,
        base_url=settings.api_url,
        base_file_url=settings.file_url,
    )


@telegram_app.command("set-webhook")
def set_webhook(
    url: Annotated[str, typer.Option("--url", help="The public HTTPS URL of the webhook route.")],
    max_connections: Annotated[
        int, typer.Option(help="Webhook requests Telegram may have open at once.")
    ] = 40,
) -> None:
    """Register the webhook URL with Telegram, with its secret token."""
    from telegram import Update

    from bot.channels.telegram.masking import mask_token
    from bot.channels.telegram.webhook import webhook_secret

    if not url.startswith(("https://", "http://")):
        typer.echo("error: --url must be an http(s) URL", err=True)
        raise typer.Exit(2)
    settings = _settings()

    async def _set() -> bool:
        bot = _bot(settings)
        async with bot:
            return bool(
                await bot.set_webhook(
                    url=url,
                    secret_token=webhook_secret(settings),
                    allowed_updates=Update.ALL_TYPES,
                    max_connections=max_connections,
                )
            )

    try:
        ok = asyncio.run(_set())
    except Exception as exc:
        typer.echo(f"error: {mask_token(f'{type(exc).__name__}: {exc}')}", err=True)
        raise typer.Exit(1) from None
    sys.stdout.write(json.dumps({"ok": ok, "url": url}) + "\n")


@telegram_app.command("delete-webhook")
def delete_webhook() -> None:
    """Remove the webhook (polling works again)."""
    from bot.channels.telegram.masking import mask_token

    settings = _settings()

    async def _delete() -> bool:
        bot = _bot(settings)
        async with bot:
            return bool(await bot.delete_webhook())

    try:
        ok = asyncio.run(_delete())
    except Exception as exc:
        typer.echo(f"error: {mask_token(f'{type(exc).__name__}: {exc}')}", err=True)
        raise typer.Exit(1) from None
    sys.stdout.write(json.dumps({"ok": ok}) + "\n")


def register(app: typer.Typer) -> None:
    """Add ``billtalk telegram ...`` to ``app``."""
    app.add_typer(telegram_app, name="telegram")
