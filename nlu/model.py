"""A trained NLU model: parse messages into Rasa ``/model/parse`` JSON; save and load.

Model folder layout (no pickles anywhere):

* ``metadata.json`` — format, engine version, training-data hash, languages, intents,
  threshold, metrics, encoder identity and the classifier's JSON parameters, and the
  sha256 of ``weights.npz``;
* ``weights.npz`` — NumPy arrays only, read with ``allow_pickle=False``.

:func:`load_model_dir` refuses a folder whose ``weights.npz`` does not match the
hash in ``metadata.json``, whose arrays need pickle, or whose shapes do not fit.
The hash guards against corruption and mixed-up files; safety against malicious
files comes from the formats themselves (JSON and plain arrays cannot run code).
"""

from __future__ import annotations

import json
import math
import threading
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from billtalk.logs import get_logger
from nlu.classifier import OUT_OF_SCOPE, IntentClassifier
from nlu.encoder import ENCODER_NAME, WEIGHTS_SHA256, SentenceEncoder, shared_encoder
from nlu.encoder_files import file_sha256
from nlu.features import normalise_text
from nlu.language import detect_language
from nlu.settings import get_nlu_settings

log = get_logger(__name__)

FORMAT = "billtalk-nlu/1"
ENGINE_VERSION = "1.2.0"
FALLBACK_INTENT = "nlu_fallback"
RANKING_LENGTH = 10
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "weights.npz"


class ModelFileError(ValueError):
    """Raised when a model folder is missing, corrupt, tampered with or incompatible."""


class NluModel:
    """A trained intent classifier plus the entity extractors.

    Build one with :func:`nlu.train` or :func:`nlu.load_model`. :meth:`parse` is
    thread-safe.

    Args:
        classifier: The fitted :class:`~nlu.classifier.IntentClassifier`.
        metadata: The model's metadata (see the module docstring).
        encoder: Sentence encoder (defaults to the process-wide MiniLM encoder).
    """

    def __init__(
        self,
        classifier: IntentClassifier,
        metadata: dict[str, Any],
        *,
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self.classifier = classifier
        self.metadata = metadata
        self._encoder = encoder
        self._synonyms: dict[str, str] = dict(metadata.get("synonyms", {}))
        self._lock = threading.Lock()

    @property
    def intents(self) -> list[str]:
        """The intents this model can return (plus :data:`FALLBACK_INTENT`)."""
        return list(self.classifier.labels)

    @property
    def threshold(self) -> float:
        """Share of typical in-scope messages allowed to fall back (0–1).

        ``BILLTALK_NLU_THRESHOLD`` overrides the value chosen at training time.
        """
        override = get_nlu_settings().threshold
        return float(override if override is not None else self.metadata["threshold"])

    def _encode(self, texts: list[str]) -> np.ndarray | None:
        if not self.classifier.use_embeddings:
            return None
        encoder = self._encoder or shared_encoder()
        return encoder.encode(texts)

    def parse(self, text: str, *, reference_date: date | None = None) -> dict[str, Any]:
        """Classify one message and extract its entities.

        Args:
            text: The message as the resident wrote it (any length; only the first
                ``BILLTALK_NLU_MAX_CHARS`` characters are analysed).
            reference_date: "Today" for resolving periods such as "last month"
                (defaults to the current date).

        Returns:
            Rasa ``/model/parse`` JSON: ``text``, ``intent`` (``name``,
            ``confidence``), ``intent_ranking``, ``entities`` (``entity``,
            ``value``, ``start``, ``end``, ``extractor``) and ``language``
            (``"en"``/``"zh"``), plus ``scope`` (``score``: the message's in-scope
            percentile rank, ``threshold``). Messages outside the domain get
            ``out_of_scope`` (trained class) or ``nlu_fallback`` (below threshold),
            with the ranking still present.
        """
        return self.parse_many([text], reference_date=reference_date)[0]

    def parse_many(
        self, texts: list[str], *, reference_date: date | None = None
    ) -> list[dict[str, Any]]:
        """Parse several messages at once (faster than one by one); same results."""
        if not texts:
            return []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"parse expects str, got {type(text).__name__}")
        max_chars = get_nlu_settings().max_chars
        # Lone surrogates (undecodable argv bytes) cannot be encoded; replace them.
        texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        clipped = [t[:max_chars] for t in texts]
        languages: list[str] = [detect_language(t) for t in clipped]
        normalised = [normalise_text(t) for t in clipped]
        with self._lock:
            embeddings = self._encode(normalised)
            decision = self.classifier.decision(normalised, embeddings, languages)
        probs = self.classifier.probabilities(decision)
        scores = self.classifier.scope_scores(decision, embeddings)
        ranks = self.classifier.in_scope_rank(scores, languages)
        threshold = self.threshold
        labels = self.classifier.labels
        results = []
        for i, text in enumerate(texts):
            order = np.argsort(-decision[i], kind="stable")[:RANKING_LENGTH]
            ranking = [
                {"name": labels[j], "confidence": round(float(probs[i, j]), 6)} for j in order
            ]
            top = labels[int(order[0])]
            rank = float(ranks[i])
            if not normalised[i]:
                intent = {"name": FALLBACK_INTENT, "confidence": 1.0}
            elif top == OUT_OF_SCOPE:
                intent = dict(ranking[0])
            elif rank < threshold:
                intent = {"name": FALLBACK_INTENT, "confidence": round(1.0 - rank, 6)}
            else:
                intent = dict(ranking[0])
            results.append(
                {
                    "text": text,
                    "intent": intent,
                    "intent_ranking": ranking,
                    "entities": self._entities(clipped[i], languages[i], reference_date),
                    "language": languages[i],
                    "scope": {"score": round(rank, 6), "threshold": threshold},
                }
            )
        return results

    def _entities(
        self, text: str, language: str, reference_date: date | None
    ) -> list[dict[str, Any]]:
        extract = _entity_extractor()
        if extract is None or not text.strip():
            return []
        try:
            found = extract(text, language, reference_date or date.today())
        except Exception as exc:  # an extractor bug must not lose the intent
            log.error("nlu.entities_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return []
        entities = []
        for ent in found:
            ent = dict(ent)
            ent.setdefault("extractor", "RuleEntityExtractor")
            value = ent.get("value")
            if isinstance(value, str) and value.lower() in self._synonyms:
                ent["value"] = self._synonyms[value.lower()]
            entities.append(ent)
        return entities

    # -- persistence ------------------------------------------------------------
    def save(self, out_dir: Path) -> Path:
        """Write ``metadata.json`` and ``weights.npz`` into ``out_dir`` (created)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state, arrays = self.classifier.to_state()
        weights = out_dir / WEIGHTS_FILE
        tmp = out_dir / (WEIGHTS_FILE + ".tmp.npz")
        save_arrays: Any = np.savez_compressed  # numpy's stubs mistype **arrays
        save_arrays(tmp, **arrays)
        tmp.replace(weights)
        meta = {**self.metadata, "classifier": state, "weights_sha256": file_sha256(weights)}
        (out_dir / METADATA_FILE).write_text(
            json.dumps(meta, ensure_ascii=False, indent=1, allow_nan=False), encoding="utf-8"
        )
        self.metadata = meta
        return out_dir


_EXTRACTOR: Any = None
_EXTRACTOR_LOADED = False


def _entity_extractor() -> Any:
    """``nlu.entities.extract_entities`` if that package is installed, else ``None``."""
    global _EXTRACTOR, _EXTRACTOR_LOADED
    if not _EXTRACTOR_LOADED:
        extractor: Any = None
        try:
            from nlu.entities import extract_entities

            extractor = extract_entities
        except Exception as exc:  # a broken extractor must not take the intents down
            log.error("nlu.entities_unavailable", error=type(exc).__name__, detail=str(exc))
        _EXTRACTOR, _EXTRACTOR_LOADED = extractor, True
    return _EXTRACTOR


def _reject_non_finite(value: str) -> float:
    raise ModelFileError(f"non-finite number {value} in metadata")


def load_model_dir(model_dir: Path, *, encoder: SentenceEncoder | None = None) -> NluModel:
    """Load a model folder written by :meth:`NluModel.save`.

    Raises:
        ModelFileError: If files are missing, the weights' sha256 does not match the
            metadata, an array needs pickle, or the contents are inconsistent.
    """
    model_dir = Path(model_dir)
    meta_path, weights_path = model_dir / METADATA_FILE, model_dir / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise ModelFileError(
            f"{model_dir}: not an NLU model folder (need {METADATA_FILE} and {WEIGHTS_FILE})"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"), parse_constant=_reject_non_finite)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{meta_path}: not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{meta_path}: unknown model format {meta.get('format')!r}"
            if isinstance(meta, dict)
            else f"{meta_path}: not an object"
        )
    if file_sha256(weights_path) != meta.get("weights_sha256"):
        raise ModelFileError(f"{weights_path}: sha256 does not match metadata; refusing to load")
    encoder_meta = meta.get("encoder")
    if encoder_meta and encoder_meta.get("weights_sha256") != WEIGHTS_SHA256:
        raise ModelFileError(
            f"{model_dir}: trained with encoder {encoder_meta.get('name')!r} whose weights "
            "differ from the installed one; retrain the model"
        )
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{weights_path}: unreadable or pickle-bearing arrays: {exc}") from exc
    for name, array in arrays.items():
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise ModelFileError(f"{weights_path}: array {name} is not numeric")
        if array.size and not np.all(np.isfinite(array)):
            raise ModelFileError(f"{weights_path}: array {name} has non-finite values")
    try:
        classifier = IntentClassifier.from_state(meta["classifier"], arrays)
        threshold = float(meta["threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{model_dir}: inconsistent model files: {exc}") from exc
    if not (0.0 <= threshold <= 1.0) or math.isnan(threshold):
        raise ModelFileError(f"{model_dir}: threshold {threshold} outside 0..1")
    return NluModel(classifier, meta, encoder=encoder)


__all__ = [
    "ENCODER_NAME",
    "FALLBACK_INTENT",
    "ModelFileError",
    "NluModel",
    "load_model_dir",
]
