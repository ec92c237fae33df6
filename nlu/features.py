"""Text normalisation and sparse n-gram features (TF-IDF over words and characters).

Word uni- and bigrams carry English phrasing; character n-grams (2–5, within word
boundaries) carry typos ("electrcity"), inflections and Chinese, which needs no word
segmenter this way: a run of ideographs is one "word" whose 2–5 character n-grams
are the features. The fitted vocabularies and idf weights are exported as plain
JSON/NumPy arrays (:meth:`TfidfFeaturizer.to_state`) so that loading a model never
unpickles anything.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

_DIGITS = re.compile(r"\d")
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")


def normalise_text(text: str, max_chars: int | None = None) -> str:
    """Normalise a message for classification.

    NFKC (full-width digits and letters become ASCII), lower case, control and
    zero-width characters removed, every digit mapped to ``0`` (the amount does not
    change the intent, its shape does), whitespace collapsed, cut to ``max_chars``.
    """
    if max_chars is not None:
        text = text[:max_chars]
    text = unicodedata.normalize("NFKC", text).lower()
    text = _CONTROL.sub(" ", text)
    text = _DIGITS.sub("0", text)
    return _SPACE.sub(" ", text).strip()


_WORD_PARAMS: dict[str, Any] = {
    "analyzer": "word",
    "ngram_range": (1, 2),
    "sublinear_tf": True,
    "token_pattern": r"(?u)\b\w+\b",
    "dtype": np.float32,
}
_CHAR_PARAMS: dict[str, Any] = {
    "analyzer": "char_wb",
    "ngram_range": (2, 5),
    "sublinear_tf": True,
    "dtype": np.float32,
}


class _Block:
    """One fitted vectorizer's analyzer, vocabulary and idf, applied to one text."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.analyze = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float32)
        self.size = len(self.vocabulary)

    def weights(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted column indices and L2-normalised sublinear TF-IDF weights."""
        counts: dict[int, int] = {}
        for term in self.analyze(text):
            column = self.vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        ordered = sorted(counts.items())
        cols = np.array([column for column, _ in ordered], dtype=np.int32)
        tf = np.array([count for _, count in ordered], dtype=np.float32)
        values = (np.log(tf) + 1) * self.idf[cols]
        norm = float(np.sqrt(np.dot(values, values)))
        return cols, values / norm if norm > 0 else values


class TfidfFeaturizer:
    """Word (1–2) plus character (2–5, ``char_wb``) TF-IDF, L2-normalised per block.

    Args:
        char_min_df: Minimum document frequency of a character n-gram; ``None``
            picks 2 for large training sets (≥ 5,000 messages) and 1 otherwise.
    """

    def __init__(self, char_min_df: int | None = None) -> None:
        self.char_min_df = char_min_df
        self.word: TfidfVectorizer | None = None
        self.char: TfidfVectorizer | None = None
        self._blocks: list[_Block] | None = None

    @property
    def n_features(self) -> int:
        """Total number of features (0 before fitting)."""
        if self.word is None or self.char is None:
            return 0
        return len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def fit_transform(self, texts: list[str]) -> sparse.csr_matrix:
        """Fit both vocabularies on normalised ``texts`` and return their features."""
        min_df = self.char_min_df or (2 if len(texts) >= 5000 else 1)
        self._blocks = None
        self.word = TfidfVectorizer(**_WORD_PARAMS)
        self.char = TfidfVectorizer(**_CHAR_PARAMS, min_df=min_df)
        # A corpus of only symbols has no word tokens; keep one dummy term then.
        safe = [t if t.strip() else "_" for t in texts]
        return sparse.hstack(
            [self.word.fit_transform(safe), self.char.fit_transform(safe)], format="csr"
        )

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        """Features of normalised ``texts`` (unknown n-grams are ignored).

        The same arithmetic as ``TfidfVectorizer.transform`` (counts, ``1 + log`` tf,
        idf, L2 norm per block), done directly: for one message sklearn's input
        validation costs more than the arithmetic.
        """
        if self.word is None or self.char is None:
            raise RuntimeError("TfidfFeaturizer is not fitted")
        if self._blocks is None:
            self._blocks = [_Block(self.word), _Block(self.char)]
        offsets = np.cumsum([0] + [block.size for block in self._blocks])
        width = int(offsets[-1])
        if not texts:
            return sparse.csr_matrix((0, width), dtype=np.float32)
        indptr, indices, data, nnz = [0], [], [], 0
        for text in texts:
            for block, offset in zip(self._blocks, offsets[:-1], strict=True):
                cols, values = block.weights(text)
                indices.append(cols + offset)
                data.append(values)
                nnz += len(cols)
            indptr.append(nnz)
        return sparse.csr_matrix(
            (np.concatenate(data), np.concatenate(indices), np.asarray(indptr)),
            shape=(len(texts), width),
        )

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Export as ``(json_part, arrays)``: vocabularies as term lists, idf as arrays."""
        if self.word is None or self.char is None:
            raise RuntimeError("TfidfFeaturizer is not fitted")
        state: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, vec in (("word", self.word), ("char", self.char)):
            terms = [""] * len(vec.vocabulary_)
            for term, index in vec.vocabulary_.items():
                terms[index] = term
            state[f"{name}_terms"] = terms
            arrays[f"{name}_idf"] = np.asarray(vec.idf_, dtype=np.float64)
        return state, arrays

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> TfidfFeaturizer:
        """Rebuild a fitted featurizer from :meth:`to_state` output (no pickle involved)."""
        self = cls()
        for name, params in (("word", _WORD_PARAMS), ("char", _CHAR_PARAMS)):
            terms = state[f"{name}_terms"]
            if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
                raise ValueError(f"{name}_terms must be a list of strings")
            idf = np.asarray(arrays[f"{name}_idf"], dtype=np.float64)
            if idf.shape != (len(terms),):
                raise ValueError(f"{name}_idf has shape {idf.shape}, expected ({len(terms)},)")
            vec = TfidfVectorizer(**params, vocabulary={t: i for i, t in enumerate(terms)})
            vec.idf_ = idf
            setattr(self, name, vec)
        return self
