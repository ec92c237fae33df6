"""``billtalk speech``: transcribe audio and synthesise replies from the command line.

``billtalk speech transcribe FILE`` prints ``{"text", "duration_s", ...}`` as one
JSON object on stdout (the contract in ``../shared/CONTRACTS.md``); unusable audio
prints ``{"error": {"code", "message"}}`` and exits with status 2.
``billtalk speech say TEXT --out FILE`` writes WAV or OGG/Opus by extension.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

speech_app = typer.Typer(
    name="speech", help="Offline speech recognition and synthesis.", no_args_is_help=True
)


def _fail(code: str, message: str, status: int = 2) -> None:
    print(json.dumps({"error": {"code": code, "message": message}}))
    raise typer.Exit(status)


@speech_app.command("transcribe")
def transcribe_command(
    file: Annotated[Path, typer.Argument(help="Audio file: WAV, FLAC, OGG/Opus or MP3.")],
    grammar: Annotated[
        str | None,
        typer.Option(
            help="Constrain to an answer grammar (amount, yes_no, utility, month, digits), "
            "'general', or a JSGF file."
        ),
    ] = None,
    expected_digits: Annotated[
        int | None, typer.Option(help="With --grammar digits: the number of digits expected.")
    ] = None,
) -> None:
    """Transcribe FILE and print {"text", "duration_s", "confidence", ...} as JSON."""
    from speech.audio import AudioError
    from speech.recognize import recognize_digits, transcribe

    try:
        if grammar == "digits":
            result = recognize_digits(file, expected_len=expected_digits)
        else:
            result = transcribe(file, grammar=grammar)
    except AudioError as exc:
        _fail(exc.code, exc.message)
        return
    except ValueError as exc:
        _fail("bad_request", str(exc))
        return
    print(json.dumps(result.to_dict(), ensure_ascii=False))


@speech_app.command("say")
def say_command(
    text: Annotated[str, typer.Argument(help="What to say ('-' reads stdin).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file, .wav or .ogg.")],
    lang: Annotated[str, typer.Option(help="Language: en or zh.")] = "en",
    voice: Annotated[str | None, typer.Option(help="espeak-ng voice, e.g. en-us+f3.")] = None,
) -> None:
    """Synthesise TEXT to --out (WAV or OGG/Opus, chosen by extension); prints JSON."""
    from speech.tts import SynthesisError, synthesize

    if text == "-":
        text = sys.stdin.read()
    ext = out.suffix.lower().lstrip(".")
    if ext not in ("wav", "ogg", "oga", "opus"):
        _fail("unsupported_format", f"Use a .wav or .ogg output file, not {out.name!r}.")
    if lang not in ("en", "zh"):
        _fail("bad_request", "lang must be 'en' or 'zh'.")
    fmt = "wav" if ext == "wav" else "ogg"
    try:
        audio = synthesize(
            text,
            lang=cast(Literal["en", "zh"], lang),
            voice=voice,
            fmt=cast(Literal["wav", "ogg"], fmt),
        )
    except ValueError as exc:
        _fail("bad_request", str(exc))
        return
    except SynthesisError as exc:
        _fail(exc.code, exc.message, status=1)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(audio)
    print(json.dumps({"out": str(out), "format": fmt, "bytes": len(audio)}))


def register(app: typer.Typer) -> None:
    """Add the ``speech`` command group to ``app``."""
    app.add_typer(speech_app, name="speech")
