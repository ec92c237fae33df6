"""The bill-domain language model as a scorer, and near-miss correction with it.

pocketsphinx decodes with the domain trigram LM (:func:`speech.grammar.domain_model`,
generated from the NLU training data); Whisper does not know it and writes a
near-miss of a domain word ("check my rails please", "no maybe greater"). The
speaker corrects Whisper's English text with :class:`DomainLexicon`: a word the
domain LM has never seen is replaced by the domain word that sounds closest
(CMUdict phones, :func:`phone_distance`) when that makes the sentence far likelier
under the LM (:data:`MIN_GAIN_LOG10`). Figures are scored as one number word;
words the LM has never seen cost :data:`OOV_LOG10` each. (Re-ranking Whisper's
beam with the LM was tried first: its 5 hypotheses differed mostly in punctuation.)
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

#: log10 probability of a word the domain LM has never seen (about its rarest words').
OOV_LOG10 = -6.0
#: What a figure (an amount, a digit string) is scored as: a number word the LM knows.
NUMBER_TOKEN = "five"


@dataclass(frozen=True)
class ArpaModel:
    """A trigram model read from an ARPA file: log10 probabilities and backoffs."""

    probs: dict[tuple[str, ...], float]
    backoffs: dict[tuple[str, ...], float]

    def log10_prob(self, history: tuple[str, ...], word: str) -> float:
        """log10 P(word | history) with standard ARPA backoff (history of 0-2 words)."""
        gram = (*history, word)
        if gram in self.probs:
            return self.probs[gram]
        if not history:
            return OOV_LOG10
        return self.backoffs.get(history, 0.0) + self.log10_prob(history[1:], word)

    def score(self, words: list[str]) -> float:
        """log10 probability of a sentence (``<s>`` and ``</s>`` added)."""
        tokens = ["<s>", *(_token(w) for w in words), "</s>"]
        total = 0.0
        for i in range(1, len(tokens)):
            total += self.log10_prob(tuple(tokens[max(0, i - 2) : i]), tokens[i])
        return total

    def per_word(self, text: str) -> float:
        """:meth:`score` of ``text`` over its number of words plus one (for ``</s>``)."""
        words = text.split()
        return self.score(words) / (len(words) + 1)


def _token(word: str) -> str:
    return NUMBER_TOKEN if re.search(r"\d", word) else word


def read_arpa(path: Path) -> ArpaModel:
    """Read an ARPA language model (as :func:`speech.grammar.arpa_trigram` writes)."""
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    order = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
            continue
        if not order or not line.strip() or line.startswith("\\"):
            continue
        parts = line.split("\t")
        gram = tuple(parts[1].split())
        if len(gram) != order:
            continue
        probs[gram] = float(parts[0])
        if len(parts) > 2:
            backoffs[gram] = float(parts[2])
    return ArpaModel(probs, backoffs)


_cache: dict[Path, ArpaModel] = {}
_lock = threading.Lock()


def _read_once(path: Path) -> ArpaModel:
    with _lock:
        model = _cache.get(path)
        if model is None:
            model = read_arpa(path)
            _cache[path] = model
        return model


def domain_lm() -> ArpaModel:
    """The domain language model pocketsphinx uses, read once per process."""
    from speech.grammar import domain_model

    return _read_once(domain_model().lm)


def state_lm(state: str) -> ArpaModel:
    """The language model pocketsphinx decodes an answer with when the dialogue expects
    ``state`` (:func:`speech.expectation.state_model`: the domain LM's sentences plus the
    state's answers), read once per process."""
    from speech.expectation import state_model

    return _read_once(state_model(state).lm)


#: Broad phone classes: a substitution inside a class costs :data:`NEAR_COST`.
_PHONE_CLASSES = (
    {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"},
    {"P", "B", "T", "D", "K", "G"},
    {"F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH", "CH", "JH"},
    {"M", "N", "NG"},
    {"L", "R", "W", "Y"},
)
NEAR_COST = 0.5
#: A word is replaced by a domain word at most this phone distance per phone away.
MAX_DISTANCE_PER_PHONE = 0.4
#: Words of this many phones or fewer are replaced only by words of as many phones.
SHORT_WORD = 3
#: ... and only when the sentence's log10 probability rises by at least this much.
MIN_GAIN_LOG10 = 2.0


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return NEAR_COST if any(a in c and b in c for c in _PHONE_CLASSES) else 1.0


def phone_distance(a: list[str], b: list[str]) -> float:
    """Edit distance between two phone strings, a substitution within a broad class
    (vowels, stops, fricatives, nasals, liquids) costing :data:`NEAR_COST`."""
    prev = [float(j) for j in range(len(b) + 1)]
    for i, x in enumerate(a, 1):
        cur = [float(i)]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + _sub_cost(x, y)))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class DomainLexicon:
    """The domain LM's words with their pronunciations, for near-miss correction."""

    lm: ArpaModel
    phones: dict[str, list[list[str]]]
    _heard: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    def candidates(self, word: str) -> list[str]:
        """Domain words that sound close to ``word`` (CMUdict pronunciations); cached."""
        cached = self._heard.get(word)
        if cached is not None:
            return cached
        from speech.sphinx import cmudict

        out: set[str] = set()
        for pron in (p.split() for p in cmudict().get(word, [])):
            limit = MAX_DISTANCE_PER_PHONE * len(pron)
            for other, prons in self.phones.items():
                for q in prons:
                    same = len(q) == len(pron)
                    if not same and (len(pron) <= SHORT_WORD or abs(len(q) - len(pron)) > limit):
                        continue
                    if phone_distance(pron, q) <= limit:
                        out.add(other)
                        break
        found = sorted(out)
        self._heard[word] = found
        return found

    def correct(self, text: str) -> str:
        """``text`` with each word the domain LM has never seen replaced by the domain
        word that sounds closest and makes the sentence far likelier under the LM
        (by :data:`MIN_GAIN_LOG10`); figures and known words are kept."""
        words = text.split()
        for i, word in enumerate(words):
            if re.search(r"\d", word) or (word,) in self.lm.probs:
                continue
            base = self.lm.score(words)
            best, gain = word, MIN_GAIN_LOG10
            for other in self.candidates(word):
                trial = self.lm.score([*words[:i], other, *words[i + 1 :]]) - base
                if trial >= gain:
                    best, gain = other, trial
            words[i] = best
        return " ".join(words)


_lexicon_cache: dict[Path, DomainLexicon] = {}


def domain_lexicon() -> DomainLexicon:
    """The :class:`DomainLexicon` of the domain model, built once per process."""
    from speech.grammar import domain_model
    from speech.sphinx import cmudict

    path = domain_model().lm
    with _lock:
        cached = _lexicon_cache.get(path)
    if cached is not None:
        return cached
    lm = domain_lm()
    full = cmudict()
    words = sorted({g[0] for g in lm.probs if len(g) == 1 and not g[0].startswith("<")})
    phones = {w: [p.split() for p in full.get(w, [])] for w in words}
    lexicon = DomainLexicon(lm, {w: p for w, p in phones.items() if p})
    with _lock:
        _lexicon_cache.clear()
        _lexicon_cache[path] = lexicon
    return lexicon
