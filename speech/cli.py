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


def grammar_names() -> list[str]:
    """The ``--grammar`` names: the answer grammars, ``general`` and ``digits``."""
    from speech.grammar import ANSWER_GRAMMARS

    return sorted([*ANSWER_GRAMMARS, "general", "digits"])


def grammar_problem(grammar: str) -> str | None:
    """Why ``--grammar`` is refused (``None``: it is fine).

    A name must be one of :func:`grammar_names`; a file must be a JSGF grammar
    (``.gram`` / ``.jsgf`` starting with ``#JSGF``). Anything else, e.g.
    ``/etc/passwd``, is refused without being read out.
    """
    if grammar in grammar_names():
        return None
    valid = ", ".join(grammar_names())
    path = Path(grammar)
    if path.suffix.lower() in (".gram", ".jsgf") and path.is_file():
        try:
            with path.open("rb") as handle:
                head = handle.read(5)
        except OSError:
            head = b""
        if head == b"#JSGF":
            return None
        return f"{grammar!r} is not a JSGF grammar file. Use one of: {valid}, or a .gram file."
    return f"unknown grammar {grammar!r}. Use one of: {valid} (or a JSGF .gram file)."


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

    if grammar is not None:
        problem = grammar_problem(grammar)
        if problem is not None:
            _fail("unknown_grammar", problem)
            return
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
    lang: Annotated[
        str | None, typer.Option(help="Language: en or zh (default: detected from TEXT).")
    ] = None,
    voice: Annotated[str | None, typer.Option(help="espeak-ng voice, e.g. en-us+f3.")] = None,
) -> None:
    """Synthesise TEXT to --out (WAV or OGG/Opus, chosen by extension); prints JSON."""
    from speech.tts import SynthesisError, synthesize

    if text == "-":
        text = sys.stdin.read()
    ext = out.suffix.lower().lstrip(".")
    if ext not in ("wav", "ogg", "oga", "opus"):
        _fail("unsupported_format", f"Use a .wav or .ogg output file, not {out.name!r}.")
    if lang is None:
        lang = detect_language(text)
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
    print(json.dumps({"out": str(out), "format": fmt, "bytes": len(audio), "lang": lang}))


def detect_language(text: str) -> str:
    """``zh`` when TEXT is mostly Chinese characters, else ``en`` ("我的电费是多少" -> zh)."""
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return "zh" if han and han * 2 >= latin else "en"


def register(app: typer.Typer) -> None:
    """Add the ``speech`` command group to ``app``."""
    app.add_typer(speech_app, name="speech")
