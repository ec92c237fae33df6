"""The terminal chat's ``/attach PATH`` line (used to enroll from the terminal)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bot.channels.terminal import SEPARATOR, read_attachment, run_chat
from bot.messages import IncomingMessage, OutgoingMessage


def test_attachment_kind_comes_from_the_extension(tmp_path: Path) -> None:
    for name, kind in [
        ("selfie.jpg", "image"),
        ("me.PNG", "image"),
        ("note.ogg", "audio"),
        ("note.wav", "audio"),
        ("round.mp4", "video"),
    ]:
        path = tmp_path / name
        path.write_bytes(b"data")
        att = read_attachment(f" {path} ")
        assert att.kind == kind and att.data == b"data" and att.filename == name


def test_unknown_types_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError):
        read_attachment(str(tmp_path / "notes.txt"))
    with pytest.raises(OSError):
        read_attachment(str(tmp_path / "gone.jpg"))


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[IncomingMessage] = []

    async def handle(self, message: IncomingMessage) -> list[OutgoingMessage]:
        self.seen.append(message)
        return [OutgoingMessage(text=f"got {len(message.attachments)} file(s)")]


async def test_chat_sends_the_file_and_keeps_the_protocol(tmp_path: Path, capsys: Any) -> None:
    photo = tmp_path / "selfie.jpg"
    photo.write_bytes(b"\xff\xd8 jpeg")
    stdin = io.StringIO(f"/attach {photo}\n/attach {tmp_path}/gone.jpg\n/attachment is text\n")
    stdout = io.StringIO()
    engine = _Recorder()
    await run_chat(engine, "r-1", "en", stdin=stdin, stdout=stdout)  # type: ignore[arg-type]
    # the missing file sends nothing, but the turn still ends with the separator
    assert stdout.getvalue().splitlines() == [
        "got 1 file(s)",
        SEPARATOR,
        SEPARATOR,
        "got 0 file(s)",
        SEPARATOR,
    ]
    assert "cannot attach" in capsys.readouterr().err
    first, second = engine.seen
    assert first.text is None and first.attachments[0].kind == "image"
    assert first.attachments[0].data == b"\xff\xd8 jpeg"
    assert second.text == "/attachment is text" and not second.attachments
