"""The one ``billtalk`` command line.

Each package contributes its own commands through a ``register(app)`` function
in its ``cli`` module; this module only mounts them. Package CLIs import heavy
libraries (torch, dlib, pocketsphinx) inside their commands, so ``billtalk
--help`` and unrelated commands stay fast.
"""

from __future__ import annotations

import importlib

import typer

from billtalk.logs import configure_logging
from billtalk.settings import get_settings

app = typer.Typer(
    name="billtalk",
    help="billtalk: a conversational payment assistant for apartment communities.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules with a ``register(app)`` function, in the order their commands are listed.
COMMAND_MODULES = (
    "backend.cli",
    "nlu.cli",
    "bot.cli",
    "speech.cli",
    "bot.channels.speaker.cli",
    "bot.channels.telegram.cli",
    "biometrics.face.cli",
    "biometrics.voice.cli",
    "console.cli",
)


@app.callback()
def _main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


def _require_free_port(host: str, port: int) -> None:
    """Exit with a clear message (code 2) when ``host:port`` cannot be listened on."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            typer.echo(
                f"error: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                f"is billtalk (or something else) already running there? "
                f"Stop it, or choose another port with --port.",
                err=True,
            )
            raise typer.Exit(2) from None


@app.command()
def run(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    households: int = typer.Option(40, help="Demo households to seed into an empty database."),
) -> None:
    """Start the product on its embedded default (what ``make run`` calls).

    Migrates the database, seeds the demo community when it is empty, makes sure
    the default NLU model is trained, then serves the billing API. Chat with the
    assistant from another terminal with ``billtalk chat --resident ID``.
    """
    from app.bootstrap import prepare_product

    _require_free_port(host, port)  # before anything says "ready"
    url = get_settings().database_url
    resident = prepare_product(url, households=households)
    typer.echo(
        f"\nbilltalk is ready on http://{host}:{port} (database {url}).\n"
        f"Chat with the assistant in another terminal:\n"
        f"  .venv/bin/billtalk chat --resident {resident}\n",
        err=True,
    )
    import uvicorn

    from app.web import create_product_app

    uvicorn.run(create_product_app(get_settings()), host=host, port=port)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """Migrate, then serve the billing API, the staff console and the channels' endpoints."""
    import uvicorn

    from app.web import create_product_app
    from backend.bootstrap import ensure_service_token

    settings = get_settings()
    app = create_product_app(settings, migrate=True)
    if settings.service_token:  # the configured assistant token is always accepted
        ensure_service_token(settings.database_url, settings.service_token)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:  # pragma: no cover - thin wrapper for ``python -m billtalk``
    """Run the command line."""
    app()


__all__ = ["app", "get_settings", "main"]
