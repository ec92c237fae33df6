"""The annotation queue: staff correct a turn's intent and entities; export as Rasa ``nlu.yml``.

A turn has at most one annotation (its id is the key): annotating it again
replaces the earlier one, so the latest correction wins. The export groups the
examples by intent in Rasa 3 format, entities written inline as
``[text](entity)`` or ``[text]{"entity": ..., "value": ...}`` when the value
differs from the text, so ``billtalk nlu train --data nlu/data FILE`` can learn
from the queue.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.store import TurnRow
from console.models import AnnotationRow

_INTENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ENTITY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class AnnotationError(ValueError):
    """An annotation was refused (unknown turn, bad intent or entity)."""


@dataclass(frozen=True)
class EntitySpan:
    """An entity in a turn's text: ``text[start:end]`` is ``entity`` with ``value``."""

    entity: str
    value: str
    start: int
    end: int


def parse_entities(text: str, spec: str) -> list[EntitySpan]:
    """Entities written one a line as ``entity=value`` or ``entity=value@span text``.

    The span is found in ``text`` (the value itself when no span text is given).

    Raises:
        AnnotationError: a malformed line, or a span not found in the text.
    """
    out: list[EntitySpan] = []
    for line in (spec or "").splitlines():
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise AnnotationError(f"write each entity as entity=value: {line!r}")
        name, _, rest = line.partition("=")
        name = name.strip()
        value, _, span = rest.partition("@")
        value, span = value.strip(), (span.strip() or value.strip())
        if not _ENTITY.fullmatch(name):
            raise AnnotationError(f"not an entity name: {name!r}")
        start = text.find(span) if span else -1
        if start < 0:
            raise AnnotationError(f"{span!r} is not in the message")
        out.append(EntitySpan(name, value, start, start + len(span)))
    return out


def annotate(
    engine: Engine,
    turn_id: int,
    intent: str,
    entities: list[EntitySpan],
    staff: str,
    *,
    raw_text: bool = True,
) -> AnnotationRow:
    """Queue (or replace) the correction of a turn.

    Args:
        raw_text: Learn from the resident's raw text (the default) or the masked one.

    Raises:
        AnnotationError: no such turn, it has no text, or the intent is malformed.
    """
    if not _INTENT.fullmatch(intent or ""):
        raise AnnotationError("the intent must be lower-case letters, digits and _")
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        turn = s.get(TurnRow, turn_id)
        if turn is None:
            raise AnnotationError(f"no turn {turn_id}")
        text = (turn.text_raw if raw_text else turn.text_masked) or ""
        if not text.strip():
            raise AnnotationError("this turn has no text to learn from")
        row = s.get(AnnotationRow, turn_id)
        if row is None:
            row = AnnotationRow(turn_id=turn_id, conversation_id=turn.conversation_id)
            s.add(row)
        row.text = text
        row.language = turn.language
        row.intent = intent
        row.entities = json.dumps([e.__dict__ for e in entities], ensure_ascii=False)
        row.original_intent = turn.intent
        row.original_confidence = turn.confidence
        row.annotated_by = staff
        row.at = now
        s.flush()
        s.expunge(row)
        return row


def queue(engine: Engine, limit: int = 500) -> list[AnnotationRow]:
    """The annotation queue, newest first."""
    with Session(engine) as s:
        return list(s.scalars(select(AnnotationRow).order_by(AnnotationRow.at.desc()).limit(limit)))


def _example(text: str, entities: list[dict[str, Any]]) -> str:
    """``text`` with its entities written inline in Rasa's markdown-ish syntax."""
    out, pos = [], 0
    for e in sorted(entities, key=lambda e: int(e["start"])):
        start, end = int(e["start"]), int(e["end"])
        if start < pos or end > len(text):
            continue  # overlapping or stale span: keep the plain text
        span = text[start:end]
        out.append(text[pos:start])
        if e["value"] == span:
            out.append(f"[{span}]({e['entity']})")
        else:
            meta = json.dumps({"entity": e["entity"], "value": e["value"]}, ensure_ascii=False)
            out.append(f"[{span}]{meta}")
        pos = end
    out.append(text[pos:])
    return "".join(out).replace("\n", " ").strip()


def export_rasa(engine: Engine) -> str:
    """The queue as a Rasa 3 ``nlu.yml`` document (intents sorted, examples by turn)."""
    with Session(engine) as s:
        rows = list(s.scalars(select(AnnotationRow).order_by(AnnotationRow.turn_id)))
    by_intent: dict[str, list[str]] = {}
    for r in rows:
        example = _example(r.text, json.loads(r.entities or "[]"))
        if example and example not in by_intent.setdefault(r.intent, []):
            by_intent[r.intent].append(example)
    lines = ['version: "3.1"', "nlu:" if by_intent else "nlu: []"]
    for intent in sorted(by_intent):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {ex}" for ex in by_intent[intent])
    return "\n".join(lines) + "\n"


def write_export(engine: Engine, out: Path) -> int:
    """Write the queue to ``out`` as Rasa ``nlu.yml``; the number of annotations."""
    text = export_rasa(engine)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return sum(1 for line in text.splitlines() if line.startswith("    - "))
