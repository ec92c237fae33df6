"""Long-lived pocketsphinx 5 decoders, one per configuration.

SpeechRecognition's ``recognize_sphinx(grammar=...)`` rebuilds its decoder on
every call and crashes on the second call with pocketsphinx 5, and loading the
full CMUdict costs seconds. So billtalk keeps one :class:`SphinxDecoder` per
(search, sample rate) in a process-wide cache, with a trimmed dictionary that
holds only the words its grammar or language model can produce.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from billtalk.logs import get_logger

log = get_logger("speech.sphinx")

#: Pronunciations of domain words missing from CMUdict (or whose entry is unusable).
EXTRA_PRONUNCIATIONS: dict[str, str] = {
    "wechat": "W IY CH AE T",
    "alipay": "AE L IY P EY",
    "autopay": "AO T OW P EY",
    "fen": "F EH N",
    "kwh": "K IH L AH W AA T AW ER Z",
    "billtalk": "B IH L T AO K",
    "okay": "OW K EY",
    "ok": "OW K EY",
    "hoa": "EY CH OW EY",
    "kuai": "K W AY",
    "rmb": "AA R EH M B IY",
    "renminbi": "R EH N M IH N B IY",
    "voiceprint": "V OY S P R IH N T",
    "biometrics": "B AY OW M EH T R IH K S",
    "enrol": "EH N R OW L",
    "autopaying": "AO T OW P EY IH NG",
    "unpair": "AH N P EH R",
    "unlink": "AH N L IH NG K",
}


def model_dir() -> Path:
    """The acoustic model folder shipped inside the pocketsphinx wheel."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us"


@lru_cache(maxsize=1)
def cmudict() -> dict[str, list[str]]:
    """CMUdict from the pocketsphinx wheel: word -> pronunciations (phones)."""
    entries: dict[str, list[str]] = {}
    with open(model_dir() / "cmudict-en-us.dict", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            word = re.sub(r"\(\d+\)$", "", parts[0])
            entries.setdefault(word, []).append(" ".join(parts[1:]))
    return entries


def narrowband_model() -> Path:
    """A copy of the wideband acoustic model whose filter bank stops at 3.5 kHz.

    The shipped model's ``feat.params`` fixes ``-upperf 6800``, which 8 kHz audio
    cannot have. The copy (in ``data_dir/speech``) links the model files and only
    rewrites ``feat.params``; how it compares with upsampling is measured in
    docs/speech.md.
    """
    from billtalk.settings import get_settings

    src = model_dir() / "en-us"
    dst = get_settings().data_dir / "speech" / "en-us-8k"
    params = dst / "feat.params"
    if not params.exists():
        dst.mkdir(parents=True, exist_ok=True)
        for item in src.iterdir():
            target = dst / item.name
            if item.name != "feat.params" and not target.exists():
                target.symlink_to(item)
        text = (src / "feat.params").read_text()
        params.write_text(re.sub(r"-upperf \S+", "-upperf 3500", text))
    return dst


def write_dictionary(words: set[str], path: Path) -> list[str]:
    """Write a pocketsphinx dictionary holding only ``words``.

    Returns:
        The words that have no pronunciation (neither CMUdict nor
        :data:`EXTRA_PRONUNCIATIONS`); they are left out of the dictionary and
        must not appear in the grammar.
    """
    full = cmudict()
    missing: list[str] = []
    lines: list[str] = []
    for word in sorted(words):
        prons = list(full.get(word, []))
        if word in EXTRA_PRONUNCIATIONS:
            prons = [EXTRA_PRONUNCIATIONS[word], *prons]
        if not prons:
            missing.append(word)
            continue
        for i, pron in enumerate(dict.fromkeys(prons)):
            lines.append(f"{word}{'' if i == 0 else f'({i + 1})'} {pron}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return missing


@dataclass(frozen=True)
class Decoded:
    """One decoder pass.

    Attributes:
        text: The hypothesis (lower-case words, fillers removed).
        posterior: Posterior probability of the whole hypothesis from the
            decoder's lattice (0 when nothing was recognised).
        word_posteriors: Posterior probability of each word of ``text``.
        frames: Number of 10 ms feature frames decoded.
    """

    text: str
    posterior: float
    word_posteriors: tuple[float, ...]
    frames: int

    @property
    def min_word_posterior(self) -> float:
        """The weakest word's posterior (0 when there are no words)."""
        return min(self.word_posteriors, default=0.0)


class SphinxDecoder:
    """A pocketsphinx decoder for one search (JSGF grammar, n-gram LM or phone loop).

    Decoding is serialised with a lock: a pocketsphinx decoder is not re-entrant,
    and building a second one costs more than waiting.

    Args:
        kind: ``"jsgf"``, ``"lm"`` or ``"allphone"``.
        source: The grammar/LM/phone-LM file (``None`` for the shipped general LM).
        dictionary: The (trimmed) dictionary file (``None`` for full CMUdict).
        sample_rate: 16000 for wideband; 8000 decodes telephone audio natively
            (512-point FFT halved, filter bank capped below 4 kHz).
        options: Extra pocketsphinx settings (``{"beam": 1e-80}``), applied last.
            Feature settings (``lowerf``, ``upperf``, ``nfilt``...) cannot be set
            this way: the model's ``feat.params`` overrides them.
    """

    def __init__(
        self,
        kind: str,
        source: Path | None,
        dictionary: Path | None,
        *,
        sample_rate: int = 16_000,
        options: Mapping[str, float | int | str | bool] | None = None,
    ) -> None:
        from pocketsphinx import Config, Decoder

        hmm = model_dir() / "en-us"
        if sample_rate == 8000:
            hmm = narrowband_model()
        config = Config(hmm=str(hmm), loglevel="FATAL")
        config["dict"] = str(dictionary or model_dir() / "cmudict-en-us.dict")
        config["lm"] = None
        if kind == "jsgf":
            config["jsgf"] = str(source)
            # The lattice posterior pass (bestpath) costs seconds on grammars and
            # its word posteriors were no better than the search's own.
            config["bestpath"] = False
        elif kind == "lm":
            config["lm"] = str(source or model_dir() / "en-us.lm.bin")
        elif kind == "allphone":
            config["allphone"] = str(source or model_dir() / "en-us-phone.lm.bin")
            config["dict"] = None
        else:
            raise ValueError(f"unknown search kind {kind!r}")
        config["samprate"] = sample_rate
        if sample_rate == 8000:
            config["nfft"] = 256
        for name, value in (options or {}).items():
            config[name] = value
        self.kind = kind
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._decoder = Decoder(config)

    def decode(self, pcm16: bytes) -> Decoded:
        """Decode one utterance of 16-bit mono PCM at this decoder's sample rate."""
        with self._lock:
            dec = self._decoder
            dec.start_utt()
            dec.process_raw(pcm16, no_search=False, full_utt=True)
            dec.end_utt()
            hyp = dec.hyp()
            frames = int(dec.n_frames())
            if hyp is None or not hyp.hypstr:
                return Decoded("", 0.0, (), frames)
            segs = [
                seg
                for seg in dec.seg()
                if not (seg.word.startswith(("<", "[", "+", "(")) or seg.word == "SIL")
            ]
            text = " ".join(re.sub(r"\(\d+\)$", "", seg.word) for seg in segs)
            posts = tuple(min(1.0, float(seg.prob)) for seg in segs)
            if self.kind == "allphone":
                text = hyp.hypstr
            return Decoded(text.lower(), min(1.0, float(hyp.prob)), posts, frames)


_cache: dict[tuple[str, str, str, int, str], SphinxDecoder] = {}
_cache_lock = threading.Lock()


def get_decoder(
    kind: str,
    source: Path | None,
    dictionary: Path | None,
    *,
    sample_rate: int = 16_000,
    options: Mapping[str, float | int | str | bool] | None = None,
) -> SphinxDecoder:
    """Return the process's decoder for this configuration, building it once."""
    key = (kind, str(source), str(dictionary), sample_rate, repr(sorted((options or {}).items())))
    with _cache_lock:
        decoder = _cache.get(key)
        if decoder is None:
            log.info("speech_decoder_load", kind=kind, source=str(source), sample_rate=sample_rate)
            decoder = SphinxDecoder(
                kind, source, dictionary, sample_rate=sample_rate, options=options
            )
            _cache[key] = decoder
        return decoder


def content_hash(*parts: str) -> str:
    """A short stable hash of generated artefacts, used in their file names."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:12]
