"""``billtalk nlu``: train, parse and test (the commands in ``../shared/CONTRACTS.md``).

JSON goes to stdout, logs and progress bars to stderr. Heavy libraries (torch,
scikit-learn) are imported inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

nlu_app = typer.Typer(
    help="Intent and entity recognition (train, parse, test).", no_args_is_help=True
)

#: Lines parsed together when stdin delivers many at once.
STDIN_BATCH = 64


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _load(model: Path | None) -> Any:
    import nlu
    from nlu.model import ModelFileError
    from nlu.rasa_backend import RasaBackendError
    from nlu.rasa_yaml import RasaYamlError

    try:
        return nlu.load_model(model)
    except (ModelFileError, RasaYamlError, RasaBackendError) as exc:
        raise _fail(str(exc)) from exc


def _write_json(obj: Any) -> None:
    line = json.dumps(obj, ensure_ascii=False, default=str) + "\n"
    sys.stdout.buffer.write(line.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()


def _stdin_batches(fd: int) -> Iterator[list[str]]:
    """Yield batches of complete stdin lines as soon as they arrive (bytes decoded as
    UTF-8 with replacement characters, so invalid input cannot crash the reader)."""
    pending = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for start in range(0, len(lines), STDIN_BATCH):
            yield [
                raw.rstrip(b"\r").decode("utf-8", errors="replace")
                for raw in lines[start : start + STDIN_BATCH]
            ]
    if pending:
        yield [pending.rstrip(b"\r").decode("utf-8", errors="replace")]


@nlu_app.command("train")
def train_command(
    data: Annotated[list[Path], typer.Option("--data", help="Rasa NLU YAML file(s) or folder(s).")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    more: Annotated[
        list[Path] | None,
        typer.Argument(help="More data paths (so `--data A B` works).", show_default=False),
    ] = None,
    no_encoder: Annotated[
        bool, typer.Option("--no-encoder", help="TF-IDF only: no MiniLM embeddings.")
    ] = False,
) -> None:
    """Train a model from Rasa 3 NLU YAML and print its metadata summary as JSON."""
    from nlu.rasa_yaml import RasaYamlError
    from nlu.train import train

    paths = [*data, *(more or [])]
    try:
        model = train(paths, out, use_encoder=False if no_encoder else None)
    except RasaYamlError as exc:
        raise _fail(str(exc)) from exc
    meta = model.metadata
    _write_json(
        {
            "model": str(out),
            "examples": meta["training_data"]["examples"],
            "intents": len(meta["training_data"]["intents"]),
            "languages": meta["languages"],
            "training_data_sha256": meta["training_data"]["sha256"],
            "threshold": meta["threshold"],
            "training_seconds": meta["training_seconds"],
        }
    )


@nlu_app.command("parse")
def parse_command(
    text: Annotated[str, typer.Argument(help="The message, or - to read one per line from stdin.")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Model folder (default: the shipped model, trained if missing)."
        ),
    ] = None,
) -> None:
    """Print the Rasa /model/parse JSON of a message (or one JSON line per stdin line)."""
    from nlu.rasa_backend import RasaBackendError

    loaded = _load(model)
    try:
        if text != "-":
            _write_json(loaded.parse(text))
            return
        for batch in _stdin_batches(sys.stdin.fileno()):
            for result in loaded.parse_many(batch):
                _write_json(result)
    except RasaBackendError as exc:  # BILLTALK_NLU_BACKEND=rasa and the server failed
        raise _fail(str(exc)) from exc


@nlu_app.command("test")
def test_command(
    data: Annotated[list[Path], typer.Option("--data", help="Rasa NLU YAML file(s)/folder(s).")],
    out: Annotated[Path, typer.Option("--out", help="Report folder to write.")],
    model: Annotated[Path | None, typer.Option("--model", help="Model folder.")] = None,
) -> None:
    """Evaluate a model on labelled data; write report.json, report.md and PNG plots."""
    from nlu.evaluate import evaluate_model, write_report
    from nlu.rasa_backend import RasaBackendError
    from nlu.rasa_yaml import RasaYamlError, load_training_data

    try:
        dataset = load_training_data(data)
    except RasaYamlError as exc:
        raise _fail(str(exc)) from exc
    loaded = _load(model)
    try:
        report = evaluate_model(loaded, dataset, progress=True)
    except RasaBackendError as exc:
        raise _fail(str(exc)) from exc
    write_report(report, out)
    _write_json({"out": str(out), **report["summary"]})


def register(app: typer.Typer) -> None:
    """Mount ``billtalk nlu ...`` on the root command line."""
    app.add_typer(nlu_app, name="nlu")
