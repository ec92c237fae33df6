"""The one web app ``billtalk serve`` runs: the billing API plus every web module.

The billing API (``backend.api.create_app``) knows nothing of the packages above
it. This composition root mounts them onto the same ASGI app: each module named
in :data:`WEB_MODULES` has a ``mount(app)`` function that adds its routes
(the staff console at ``/console/``, the Telegram webhook, the speaker
endpoints). A module that is not installed yet is skipped.
"""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from billtalk.logs import get_logger
from billtalk.settings import Settings, get_settings

log = get_logger("app.web")

#: Modules with a ``mount(app: FastAPI) -> None`` function, mounted in this order.
WEB_MODULES: tuple[str, ...] = (
    "console.web",
    "bot.channels.telegram.webhook",
    "bot.channels.speaker.http",
)


def create_product_app(settings: Settings | str | None = None, *, migrate: bool = False) -> FastAPI:
    """The billing API with the console and the channels' web endpoints mounted.

    Args:
        settings: The process settings, a database URL, or ``None`` for the environment's.
        migrate: Create or upgrade every package's tables first.
    """
    from backend.api import create_app

    settings = settings or get_settings()
    url = settings if isinstance(settings, str) else settings.database_url
    if migrate:
        from app.bootstrap import migrate_all

        migrate_all(url)
    app = create_app(settings, migrate=False)
    for name in WEB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that web module is not part of this build
            raise
        module.mount(app)
    return app
