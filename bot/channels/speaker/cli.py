"""``billtalk speaker``: the Wyoming server and the paired speakers.

* ``billtalk speaker serve --uri tcp://HOST:PORT`` runs the Wyoming server for
  Home Assistant Assist (asr, handle and tts programs) on the product's database;
* ``billtalk speaker devices [--all]`` prints the paired speakers as JSON lines
  (``--all``: every speaker heard, paired or not);
* ``billtalk speaker unpair --device ID`` unpairs one;
* ``billtalk speaker key --device ID [--label NAME]`` issues the key an HTTP
  device sends to ``POST /api/v1/speaker/ask`` (printed once, stored hashed).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.channels.speaker.devices import DeviceRegistry

speaker_app = typer.Typer(
    name="speaker",
    help="Smart speakers: the Wyoming server, paired devices, HTTP device keys.",
    no_args_is_help=True,
)


def _registry() -> DeviceRegistry:
    from billtalk.db import make_engine
    from billtalk.settings import get_settings
    from bot.channels.speaker.devices import DeviceRegistry, ensure_schema
    from bot.channels.speaker.settings import get_speaker_settings
    from bot.settings import get_dialogue_settings
    from bot.store import ensure_schema as ensure_bot_schema

    url = get_dialogue_settings().database_url or get_settings().database_url
    ensure_bot_schema(url)
    ensure_schema(url)
    settings = get_speaker_settings()
    return DeviceRegistry(
        make_engine(url),
        max_failures=settings.pairing_max_failures,
        lock_minutes=settings.pairing_lock_minutes,
    )


@speaker_app.command("serve")
def serve_command(
    uri: Annotated[
        str, typer.Option(help="Where to listen, as tcp://HOST:PORT.")
    ] = "tcp://127.0.0.1:10700",
) -> None:
    """Run the Wyoming server (asr, handle, tts) until interrupted."""
    import asyncio
    import sys

    from bot.channels.speaker.wyoming_server import parse_uri

    try:
        parse_uri(uri)
    except ValueError as exc:
        print(json.dumps({"error": {"code": "bad_uri", "message": str(exc)}}))
        raise typer.Exit(2) from exc

    async def main() -> None:
        from bot.channels.speaker.channel import SpeakerChannel
        from bot.channels.speaker.devices import ensure_schema
        from bot.channels.speaker.wyoming_server import SpeakerService, serve, warm_up
        from bot.engine import DialogueEngine

        engine = await DialogueEngine.embedded()
        await asyncio.to_thread(ensure_schema, str(engine.store.engine.url))
        await asyncio.to_thread(warm_up)
        service = SpeakerService(SpeakerChannel(engine))
        sys.stderr.write(f"billtalk speaker: Wyoming server on {uri}\n")
        sys.stderr.flush()
        await serve(uri, service)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@speaker_app.command("devices")
def devices_command(
    all_devices: Annotated[
        bool, typer.Option("--all", help="Every speaker heard, paired or not.")
    ] = False,
) -> None:
    """List the paired speakers, one JSON object a line."""
    for device in _registry().devices(paired_only=not all_devices):
        print(json.dumps(device.to_dict(), ensure_ascii=False))


@speaker_app.command("unpair")
def unpair_command(
    device: Annotated[str, typer.Option(help="The device id, as `devices` lists it.")],
) -> None:
    """Unpair a speaker: it forgets the household and must be paired again."""
    unpaired = _registry().unpair(device)
    print(json.dumps({"device_id": device, "unpaired": unpaired}))
    if not unpaired:
        raise typer.Exit(1)


@speaker_app.command("key")
def key_command(
    device: Annotated[str, typer.Option(help="A device id of your choice, e.g. 'diy-kitchen'.")],
    label: Annotated[str, typer.Option(help="What the device is called.")] = "",
) -> None:
    """Issue the key an HTTP device sends to POST /api/v1/speaker/ask (shown once)."""
    key = _registry().issue_key(device, datetime.now(UTC), label)
    print(json.dumps({"device_id": device, "key": key}))


def register(app: typer.Typer) -> None:
    """Add the ``speaker`` command group to ``app``."""
    app.add_typer(speaker_app, name="speaker")
