"""Settings of the Telegram channel (``BILLTALK_TELEGRAM_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PUBLIC_API_URL = "https://api.telegram.org/bot"
PUBLIC_FILE_URL = "https://api.telegram.org/file/bot"


class TelegramSettings(BaseSettings):
    """Knobs of the Telegram channel.

    Every value can be set from the environment with the ``BILLTALK_TELEGRAM_``
    prefix, e.g. ``BILLTALK_TELEGRAM_TOKEN=123:ABC``. The token is never printed:
    it is excluded from ``repr`` and masked in every log line
    (:mod:`bot.channels.telegram.masking`).
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_TELEGRAM_", env_file=".env", extra="ignore", frozen=True
    )

    #: The bot token from @BotFather (required to run the bot).
    token: str = Field(default="", repr=False)
    #: The Bot API base (PTB's ``base_url``): requests go to ``{api_url}{token}/{method}``.
    api_url: str = PUBLIC_API_URL
    #: The file base (PTB's ``base_file_url``): files at ``{file_url}{token}/{file_path}``.
    file_url: str = PUBLIC_FILE_URL
    #: The webhook's secret (``X-Telegram-Bot-Api-Secret-Token``); ``set-webhook`` generates
    #: one and prints it; every worker serving the webhook must have the same value.
    webhook_secret: str = Field(default="", repr=False)
    #: Where the webhook route is mounted in the API app.
    webhook_path: str = "/telegram/webhook"
    #: Files (voice notes, photos, video notes) larger than this are refused by their
    #: declared size, before any download.
    max_file_bytes: int = 10 * 1024 * 1024
    #: Seconds a Bot API call may take (read timeout) before it counts as failed.
    request_timeout_s: float = 10.0
    #: Long-polling timeout of ``getUpdates`` in polling mode.
    poll_timeout_s: int = 20
    #: Updates handled at once (different chats; one chat's updates always in order).
    concurrent_updates: int = 64
    #: Sends per second across all chats (Telegram allows about 30).
    max_sends_per_s: float = 30.0
    #: How often a 429 ``RetryAfter`` is waited out and retried before the send fails.
    max_retries: int = 3
    #: A claimed update not finished within this many seconds is taken over by a redelivery
    #: (its worker died), or, when it was acknowledged early, by a live worker's sweep. A
    #: webhook worker renews its own claims every :attr:`claim_refresh_s`, so a long turn of
    #: a live worker never turns stale.
    stale_claim_s: float = 120.0
    #: Webhook: how often a worker renews the claims it holds and looks for acknowledged
    #: updates whose worker died (at most a third of :attr:`stale_claim_s` is used).
    claim_refresh_s: float = 10.0
    #: Webhook: answer Telegram as soon as a voice note, audio, photo, video (note) or
    #: document is claimed, and finish its turn in the background (the raw update kept in the
    #: ledger until done, for a live worker to take over). Text, commands and button presses
    #: are answered when their turn is done. False: every update holds its webhook request.
    early_ack: bool = True
    #: Webhook: turns a worker runs in the background at once; past this an update holds its
    #: request again (Telegram's ``max_connections`` bounds the load, as without early ack).
    max_background_turns: int = 64
    #: How long an update waits for an earlier update of the same chat (another worker).
    order_wait_s: float = 30.0
    #: How often the outbox of pushed messages is polled.
    outbox_poll_s: float = 1.0
    #: How often the billing backend's notices (due and overdue reminders, a pending
    #: payment's outcome) are fetched and written to Telegram conversations' outbox; 0: never
    #: (another process delivers them). Every worker may poll: each notice is told once.
    notice_poll_s: float = 30.0
    #: Handled updates (and the replies kept with them for a dead worker's successor) are
    #: forgotten after this many hours; Telegram redelivers an update for at most 24 hours.
    #: 0: kept forever.
    keep_handled_h: float = 48.0
    #: How often each worker forgets what is older than :attr:`keep_handled_h`.
    housekeeping_every_s: float = 3600.0
    #: Threads of the event loop's default executor (the engine's database calls, NLU and
    #: voice decoding run there): enough that text turns never queue behind voice notes.
    #: 0 leaves the loop's default (CPUs + 4) alone.
    threads: int = 32


@lru_cache(maxsize=1)
def get_telegram_settings() -> TelegramSettings:
    """The process's Telegram settings, read once from the environment."""
    return TelegramSettings()
