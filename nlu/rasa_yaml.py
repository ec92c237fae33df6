"""Read and write Rasa 3 NLU training data (YAML) natively.

Supported, as in Rasa 3.x ``nlu:`` sections:

* ``- intent: NAME`` with ``examples: |`` blocks (one ``- text`` a line) or with a
  list of ``{"text": ..., "metadata": ...}`` items;
* entity annotations inside examples: ``[text](entity)``, the legacy
  ``[text](entity:value)``, ``[text]{"entity": "utility", "value": "electricity"}``
  (with optional ``role`` and ``group``) and ``[text][{...}, {...}]``;
* ``- synonym: CANONICAL``, ``- lookup: NAME`` and ``- regex: NAME`` blocks.

:func:`load_training_data` reads files or folders (``*.yml`` / ``*.yaml``,
recursively, in sorted order; YAML files without an ``nlu:`` key, such as a Rasa
``domain.yml``, are skipped) into a :class:`TrainingData`. :func:`dump_training_data`
writes it back; reading the written text gives an equal object (round trip).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "EntityAnnotation",
    "Example",
    "RasaYamlError",
    "TrainingData",
    "dump_training_data",
    "format_example",
    "load_training_data",
    "parse_annotated_text",
    "parse_training_yaml",
]

# Rasa's own pattern for entity annotations (rasa/shared/nlu/training_data/entities_parser.py).
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|\{(?P<dict>[^}]+?)\}"
    r"|\[(?P<dicts>.*?)\])"
)


class RasaYamlError(ValueError):
    """Raised for training data that is not valid Rasa 3 NLU YAML.

    The message names the file (when known) and what is wrong with it.
    """


@dataclass(frozen=True)
class EntityAnnotation:
    """One annotated entity in a training example.

    Attributes:
        entity: The entity type, e.g. ``"utility"``.
        start: Offset of the first character in the example's plain text.
        end: Offset one past the last character.
        value: The normalised value (the annotated ``value``, else the text itself).
        role: Optional Rasa entity role.
        group: Optional Rasa entity group.
    """

    entity: str
    start: int
    end: int
    value: str
    role: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Example:
    """A training example: plain text (annotations removed), its intent and entities."""

    text: str
    intent: str
    entities: tuple[EntityAnnotation, ...] = ()
    metadata: dict[str, Any] | None = field(default=None, compare=False, hash=False)


@dataclass
class TrainingData:
    """Everything read from one or more Rasa NLU YAML files.

    Attributes:
        examples: Intent examples in file order.
        synonyms: Lower-cased variant → canonical value (from ``synonym:`` blocks and
            from annotations whose value differs from their text).
        lookups: Lookup table name → entries.
        regexes: Regex feature name → patterns.
    """

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    regexes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        """Sorted distinct intent names."""
        return sorted({e.intent for e in self.examples})

    @property
    def entity_types(self) -> list[str]:
        """Sorted distinct entity types used in annotations."""
        return sorted({a.entity for e in self.examples for a in e.entities})

    def merge(self, other: TrainingData) -> TrainingData:
        """Return a new object holding this data followed by ``other``."""
        lookups = {k: list(v) for k, v in self.lookups.items()}
        for k, v in other.lookups.items():
            lookups.setdefault(k, []).extend(v)
        regexes = {k: list(v) for k, v in self.regexes.items()}
        for k, v in other.regexes.items():
            regexes.setdefault(k, []).extend(v)
        return TrainingData(
            examples=[*self.examples, *other.examples],
            synonyms={**self.synonyms, **other.synonyms},
            lookups=lookups,
            regexes=regexes,
        )

    def fingerprint(self) -> str:
        """SHA-256 of a canonical JSON form: equal data gives an equal hash."""
        canonical = {
            "examples": [
                [
                    e.text,
                    e.intent,
                    [[a.entity, a.start, a.end, a.value, a.role, a.group] for a in e.entities],
                ]
                for e in self.examples
            ],
            "synonyms": sorted(self.synonyms.items()),
            "lookups": sorted((k, sorted(v)) for k, v in self.lookups.items()),
            "regexes": sorted((k, sorted(v)) for k, v in self.regexes.items()),
        }
        blob = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def normalise(self, entity: str, text: str) -> str:
        """Map an entity's surface ``text`` to its canonical value through the synonyms."""
        del entity  # synonyms are global in Rasa, not per entity type
        return self.synonyms.get(text.strip().lower(), text)


def parse_annotated_text(text: str, intent: str = "", *, source: str = "") -> Example:
    """Parse one example line with Rasa entity annotations.

    Args:
        text: The example as written, e.g. ``"pay [60](amount) on [water](utility)"``.
        intent: The intent the example belongs to.
        source: File name for error messages.

    Returns:
        The :class:`Example` with the plain text and entity offsets into it.

    Raises:
        RasaYamlError: If an annotation's JSON is malformed or lacks ``entity``.
    """
    plain: list[str] = []
    entities: list[EntityAnnotation] = []
    cursor = 0
    offset = 0
    for match in _ANNOTATION.finditer(text):
        before = text[cursor : match.start()]
        plain.append(before)
        offset += len(before)
        surface = match.group("text")
        start, end = offset, offset + len(surface)
        plain.append(surface)
        offset = end
        cursor = match.end()
        specs: list[dict[str, Any]]
        if match.group("entity") is not None:
            spec: dict[str, Any] = {"entity": match.group("entity").strip()}
            if match.group("value") is not None:
                spec["value"] = match.group("value").strip()
            specs = [spec]
        else:
            raw = (
                "{" + match.group("dict") + "}"
                if match.group("dict") is not None
                else ("[" + match.group("dicts") + "]")
            )
            try:
                loaded = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise RasaYamlError(
                    f"{source or '<text>'}: bad entity annotation {match.group(0)!r}: {exc.msg}"
                ) from exc
            specs = loaded if isinstance(loaded, list) else [loaded]
        for spec in specs:
            if not isinstance(spec, dict) or not spec.get("entity"):
                raise RasaYamlError(
                    f"{source or '<text>'}: annotation {match.group(0)!r} has no 'entity'"
                )
            value = spec.get("value", surface)
            entities.append(
                EntityAnnotation(
                    entity=str(spec["entity"]),
                    start=start,
                    end=end,
                    value=value if isinstance(value, str) else json.dumps(value),
                    role=spec.get("role"),
                    group=spec.get("group"),
                )
            )
    plain.append(text[cursor:])
    return Example(text="".join(plain), intent=intent, entities=tuple(entities))


def format_example(example: Example) -> str:
    """Write ``example`` back in Rasa annotation syntax.

    The inverse of :func:`parse_annotated_text`: plain spans where the value is the
    text itself, JSON annotations where a value, role or group is present.
    """
    by_span: dict[tuple[int, int], list[EntityAnnotation]] = {}
    for ann in example.entities:
        by_span.setdefault((ann.start, ann.end), []).append(ann)
    out: list[str] = []
    cursor = 0
    for (start, end), anns in sorted(by_span.items()):
        surface = example.text[start:end]
        out.append(example.text[cursor:start])
        specs = []
        for ann in anns:
            spec: dict[str, str] = {"entity": ann.entity}
            if ann.value != surface:
                spec["value"] = ann.value
            if ann.role:
                spec["role"] = ann.role
            if ann.group:
                spec["group"] = ann.group
            specs.append(spec)
        if len(specs) > 1:
            out.append(f"[{surface}]{json.dumps(specs, ensure_ascii=False)}")
        elif set(specs[0]) == {"entity"}:
            out.append(f"[{surface}]({specs[0]['entity']})")
        else:
            out.append(f"[{surface}]{json.dumps(specs[0], ensure_ascii=False)}")
        cursor = end
    out.append(example.text[cursor:])
    return "".join(out)


def _block_items(examples: Any, source: str, key: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(text, metadata)`` for an ``examples`` value (block string or list)."""
    if isinstance(examples, str):
        for line in examples.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("-"):
                raise RasaYamlError(
                    f"{source}: {key}: example lines must start with '- ', got {stripped!r}"
                )
            text = stripped[1:].strip()
            if text:
                yield text, None
    elif isinstance(examples, list):
        for item in examples:
            if isinstance(item, dict) and "text" in item:
                yield str(item["text"]).strip(), item.get("metadata")
            elif isinstance(item, str):
                yield item.strip(), None
            else:
                raise RasaYamlError(f"{source}: {key}: unsupported example item {item!r}")
    else:
        raise RasaYamlError(f"{source}: {key}: 'examples' must be a block string or a list")


def parse_training_yaml(content: str, *, source: str = "<string>") -> TrainingData:
    """Parse Rasa 3 NLU YAML text.

    Args:
        content: The YAML document.
        source: A name for error messages (usually the file path).

    Returns:
        The parsed :class:`TrainingData` (empty if the document has no ``nlu:`` key).

    Raises:
        RasaYamlError: If the YAML is malformed or an ``nlu`` item is not understood.
    """
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise RasaYamlError(f"{source}: invalid YAML: {exc}") from exc
    data = TrainingData()
    if not isinstance(doc, dict) or "nlu" not in doc:
        return data
    items = doc["nlu"] or []
    if not isinstance(items, list):
        raise RasaYamlError(f"{source}: 'nlu' must be a list")
    for item in items:
        if not isinstance(item, dict):
            raise RasaYamlError(f"{source}: nlu item {item!r} is not a mapping")
        examples = item.get("examples", "")
        if "intent" in item:
            intent = str(item["intent"])
            for text, metadata in _block_items(examples, source, f"intent {intent}"):
                ex = parse_annotated_text(text, intent, source=source)
                if metadata is not None:
                    ex = Example(ex.text, ex.intent, ex.entities, metadata)
                data.examples.append(ex)
                for ann in ex.entities:
                    surface = ex.text[ann.start : ann.end]
                    if ann.value != surface:
                        data.synonyms.setdefault(surface.lower(), ann.value)
        elif "synonym" in item:
            canonical = str(item["synonym"])
            for text, _ in _block_items(examples, source, f"synonym {canonical}"):
                data.synonyms[text.lower()] = canonical
        elif "lookup" in item:
            name = str(item["lookup"])
            entries = [t for t, _ in _block_items(examples, source, f"lookup {name}")]
            data.lookups.setdefault(name, []).extend(entries)
        elif "regex" in item:
            name = str(item["regex"])
            patterns = [t for t, _ in _block_items(examples, source, f"regex {name}")]
            data.regexes.setdefault(name, []).extend(patterns)
        else:
            raise RasaYamlError(f"{source}: unknown nlu item with keys {sorted(item)}")
    return data


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())
    if path.is_file():
        return [path]
    raise RasaYamlError(f"{path}: no such file or directory")


def load_training_data(paths: Path | str | Iterable[Path | str]) -> TrainingData:
    """Read Rasa NLU YAML from files and/or folders into one :class:`TrainingData`.

    Args:
        paths: A file, a folder (searched recursively for ``*.yml``/``*.yaml``), or
            several of them.

    Raises:
        RasaYamlError: If a path does not exist, a file is malformed, or no
            intent examples were found at all.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    data = TrainingData()
    for root in paths:
        for file in _yaml_files(Path(root)):
            try:
                content = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise RasaYamlError(f"{file}: not UTF-8 text") from exc
            data = data.merge(parse_training_yaml(content, source=str(file)))
    if not data.examples:
        raise RasaYamlError(f"no intent examples found in {', '.join(map(str, paths))}")
    return data


def _block(lines: Iterable[str]) -> str:
    return "".join(f"    - {line}\n" for line in lines)


def dump_training_data(data: TrainingData) -> str:
    """Return ``data`` as Rasa 3 NLU YAML.

    Intents come in first-seen order, then ``synonym:``, ``lookup:`` and ``regex:``
    blocks. Every synonym is written as a ``synonym:`` block (including those implied
    by annotation values), so the result reads back to an equal :class:`TrainingData`.
    """
    out = ['version: "3.1"\n', "nlu:\n"]
    by_intent: dict[str, list[Example]] = {}
    for ex in data.examples:
        by_intent.setdefault(ex.intent, []).append(ex)
    for intent, examples in by_intent.items():
        out.append(f"- intent: {intent}\n  examples: |\n")
        out.append(_block(format_example(e) for e in examples))
    by_canonical: dict[str, list[str]] = {}
    for variant, canonical in data.synonyms.items():
        by_canonical.setdefault(canonical, []).append(variant)
    for canonical, variants in by_canonical.items():
        out.append(f"- synonym: {json.dumps(canonical, ensure_ascii=False)}\n  examples: |\n")
        out.append(_block(variants))
    for name, entries in data.lookups.items():
        out.append(f"- lookup: {name}\n  examples: |\n" + _block(entries))
    for name, patterns in data.regexes.items():
        out.append(f"- regex: {name}\n  examples: |\n" + _block(patterns))
    return "".join(out)
