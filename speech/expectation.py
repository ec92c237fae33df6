"""Recognition that knows what the dialogue expects next.

When the dialogue has just asked for a PIN, a yes/no confirmation or (on an
unpaired speaker) a link code, the answer is far more predictable than a free
request. As Alexa's dialog model and Home Assistant's expected responses do,
the speaker passes that *expectation* to the recogniser (also after the payment
form asked which bill or which method, :data:`CHOICE_ANSWERS`):

* a **state language model**: the domain trigram LM's sentences (everything a
  resident may say, so a change of subject is still heard) plus the answers
  the state expects, weighted so that they carry about as much mass as all the
  rest (:data:`STATE_WEIGHTS`). The answers come from the NLU training data
  (``affirm``/``deny``/``cancel`` for a confirmation, ``link_account`` for a link
  code; a PIN's carrier phrases are the link code's with "code" said as "pin"),
  never from a benchmark's test requests;
* for a PIN or link code said with words before it, a **digit grammar with the carrier phrase**
  (``[my pin is] <d> <d> ...``) re-decodes an answer that holds a run of 4-8
  digits, held to the heard length and to 6 (the better-scored wins), as the
  bare digit grammar did for digit-only answers.

A weak decode in a state is handled by the caller as a free one (general model,
Whisper's second opinion): the expectation narrows, it does not decide.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from billtalk.logs import get_logger
from speech.audio import Audio
from speech.grammar import (
    ANSWERS,
    NLU_DATA_DIR,
    _expand,
    arpa_trigram,
    domain_model,
    example_tokens,
    read_nlu_sentences,
    speech_dir,
)
from speech.numbers import DIGIT_WORDS as _DIGIT_VALUES
from speech.settings import SpeechSettings, get_speech_settings
from speech.sphinx import Decoded, content_hash, get_decoder, write_dictionary

log = get_logger("speech.expectation")

#: What the dialogue can expect a spoken answer to be.
EXPECTATIONS = ("pin", "yes_no", "link_code", "utility", "method")

#: Share of the state LM's sentences that are the expected answers (the rest are
#: the domain LM's), per state. Chosen on the development requests
#: (bench/speaker_dev_requests.py): ``yes_no`` 0.35 of 0.25 / 0.35 / 0.5 (2026-12-07
#: 13:41 run, WER on the 144 yes / no clips 30.4 / 29.2 / 29.4 %: about the same).
STATE_WEIGHTS: dict[str, float] = {
    "pin": 0.5, "yes_no": 0.35, "link_code": 0.5, "utility": 0.5, "method": 0.5,
}  # fmt: skip

#: NLU intents whose examples are the expected answers of each state.
STATE_INTENTS: dict[str, tuple[str, ...]] = {
    "yes_no": ("affirm", "deny", "cancel"),
    "link_code": ("link_account",),
    "pin": ("cancel",),
    "utility": ("cancel",),
    "method": ("cancel",),
}

#: The spoken choices of a choice state (slots filled from the domain grammar's
#: utilities and methods): answers to "Which bill: water, electricity or gas?" and
#: "How would you like to pay?".
CHOICE_ANSWERS: dict[str, tuple[str, ...]] = {
    "utility": (
        "<utility>", "the <utility>", "the <utility> bill", "<utility> bill", "<utility> please",
        "the <utility> please", "pay the <utility> bill", "pay <utility>", "all of them",
        "everything", "pay everything", "all the bills", "all of it",
    ),
    "method": (
        "<method>", "by <method>", "with <method>", "pay with <method>", "pay by <method>",
        "<method> please", "use <method>", "use my <method>", "from my wallet", "my <method>",
    ),
}  # fmt: skip

_DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Lengths of a digit run that is re-decoded with the carrier-phrase digit grammar.
DIGIT_RUN = range(4, 9)


@dataclass(frozen=True)
class StateDecode:
    """One decode in an expectation state.

    Attributes:
        words: The recognised words (lower case, digits as words).
        confidence: 0-1, as :func:`speech.recognize.decode_confidence` (grammar decodes:
            :func:`speech.recognize.checked_confidence` against the state LM's words).
        engine: ``pocketsphinx/state-<name>`` or ``pocketsphinx/state-<name>-digits``.
    """

    words: str
    confidence: float
    engine: str


def intent_sentences(intents: tuple[str, ...], folder: Path = NLU_DATA_DIR) -> list[list[str]]:
    """The English NLU examples of ``intents`` as spoken tokens with slots."""
    out: list[list[str]] = []
    for file in sorted(folder.rglob("*.yml")):
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for block in doc.get("nlu", []) or []:
            if not isinstance(block, dict) or block.get("intent") not in intents:
                continue
            examples = block.get("examples", "")
            if not isinstance(examples, str):
                continue
            for line in examples.splitlines():
                if line.strip().startswith("- "):
                    tokens = example_tokens(line.strip()[2:])
                    if tokens:
                        out.append(tokens)
    return out


def carrier_phrases(state: str) -> list[list[str]]:
    """Words said before the digits of a link code (NLU ``link_account`` examples with a
    code), or of a PIN (the same with "link code" / "code" said as "pin")."""
    phrases: dict[tuple[str, ...], None] = {(): None}
    for tokens in intent_sentences(("link_account",)):
        if "<digits>" in tokens and tokens[-1] == "<digits>":
            phrases[tuple(tokens[:-1])] = None
    if state == "pin":
        out: dict[tuple[str, ...], None] = {(): None}
        for phrase in phrases:
            text = " ".join(phrase)
            if "code" not in text:
                continue
            text = re.sub(r"\b(?:link(?:ing)? |activation |invite |account )?code\b", "pin", text)
            text = re.sub(r"\b(?:link|connect) (?:account )?(?:with )?", "", text).strip()
            if "pin" in text.split() and len(text.split()) <= 4:
                out[tuple(text.split())] = None
        phrases = out
    return [list(p) for p in phrases]


def state_sentences(state: str) -> list[list[str]]:
    """The expected answers of ``state`` as token lists (slots such as ``<digits>`` kept)."""
    if state not in EXPECTATIONS:
        raise ValueError(f"unknown expectation {state!r}: use one of {EXPECTATIONS}")
    sentences = intent_sentences(STATE_INTENTS[state])
    if state == "yes_no":
        sentences += [a.split() for a in ANSWERS]
    if state in ("pin", "link_code"):
        sentences += [[*p, "<digits>"] for p in carrier_phrases(state)]
    sentences += [a.split() for a in CHOICE_ANSWERS.get(state, ())]
    return [list(s) for s in dict.fromkeys(tuple(s) for s in sentences)]


@dataclass(frozen=True)
class _StateModel:
    lm: Path
    dictionary: Path
    digit_grammars: dict[int, Path]


_models: dict[str, _StateModel] = {}
_models_lock = threading.Lock()


def state_model(state: str) -> _StateModel:
    """Write (once per content) the state LM, its dictionary and its digit grammars."""
    with _models_lock:
        cached = _models.get(state)
        if cached is not None and cached.lm.exists():
            return cached
        base = domain_model()
        domain = _expand([list(s) for s in dict.fromkeys(map(tuple, read_nlu_sentences()))])
        expected = state_sentences(state)
        with_slot = [s for s in expected if any(t.startswith("<") for t in s)]
        # weight 0.5: as many expected sentences as domain ones.
        weight = STATE_WEIGHTS[state]
        want = int(len(domain) * weight / (1 - weight))
        plain = [s for s in expected if s not in with_slot]
        copies = max(1, want // max(1, len(expected)))
        state_lm = [s for s in plain for _ in range(copies)]
        state_lm += _expand(with_slot, copies=copies, seed=11)
        carriers = carrier_phrases(state) if state in ("pin", "link_code") else []
        key = content_hash(
            base.lm.name, base.lm.parent.name, state, str(weight),
            *(" ".join(s) for s in expected),
        )  # fmt: skip
        out = speech_dir() / f"state-{state}-{key}"
        lm_path, dic_path = out / "state.lm", out / "state.dict"
        grammars = {n: out / f"digits-{n}.gram" for n in DIGIT_RUN} if carriers else {}
        if not lm_path.exists() or not dic_path.exists():
            out.mkdir(parents=True, exist_ok=True)
            sentences = domain + state_lm
            vocab = {w for s in sentences for w in s} | set(_DIGITS)
            vocab |= {w for p in carriers for w in p}
            missing = set(write_dictionary(vocab, dic_path))
            sentences = [s for s in sentences if not set(s) & missing]
            partial = lm_path.with_suffix(".partial")
            partial.write_text(arpa_trigram(sentences), encoding="utf-8")
            partial.replace(lm_path)
            log.info("speech_state_model_built", state=state, sentences=len(sentences))
        for n, path in grammars.items():
            text = _digit_jsgf(carriers, n)
            if not path.exists() or path.read_text() != text:
                path.write_text(text, encoding="utf-8")
        model = _StateModel(lm_path, dic_path, grammars)
        _models[state] = model
        return model


def _digit_jsgf(carriers: list[list[str]], length: int) -> str:
    said = sorted({" ".join(p) for p in carriers if p})
    prefix = " | ".join(["<NULL>", *said])
    return (
        "#JSGF V1.0;\ngrammar statedigits;\n"
        f"<d> = {' | '.join(_DIGITS)};\n<prefix> = {prefix};\n"
        f"public <answer> = <prefix> {' '.join(['<d>'] * length)};\n"
    )


def digit_run(words: str) -> int | None:
    """Length of the trailing run of 4-8 digit words in ``words``, if there is one."""
    tokens = words.split()
    n = 0
    for tok in reversed(tokens):
        if tok not in _DIGIT_VALUES:
            break
        n += 1
    return n if n in DIGIT_RUN else None


def decode_in_state(
    audio: Audio, state: str, settings: SpeechSettings | None = None
) -> StateDecode:
    """Decode ``audio`` as an answer to the dialogue's question in ``state``.

    Args:
        audio: The loaded utterance (16 kHz).
        state: One of :data:`EXPECTATIONS`.
        settings: Speech settings (dither, telephone mode).

    Returns:
        The :class:`StateDecode`; a weak one (confidence below ``min_confidence``)
        should be decoded freely by the caller.
    """
    from speech.recognize import checked_confidence, decode_confidence, pcm_for, word_agreement

    settings = settings or get_speech_settings()
    model = state_model(state)
    pcm, rate = pcm_for(audio, settings)
    lm = get_decoder("lm", model.lm, model.dictionary, sample_rate=rate).decode(pcm)
    best = StateDecode(lm.text, decode_confidence(lm), f"pocketsphinx/state-{state}")
    run = digit_run(lm.text) if model.digit_grammars else None
    # Digits alone are left to the caller's bare digit grammar (speaker: ``_digit_string``).
    if run is not None and len(lm.text.split()) > run:
        # As the bare digit grammar for digit-only answers: the grammar's reading of
        # the digits replaces the LM's (the better-scored of the heard length and 6).
        from speech.recognize import DIGIT_SEARCH

        grammar_best: StateDecode | None = None
        for length in sorted({run, 6}):
            gram = model.digit_grammars[length]
            fixed: Decoded = get_decoder(
                "jsgf", gram, model.dictionary, sample_rate=rate, options=DIGIT_SEARCH
            ).decode(pcm)
            if not fixed.text:
                continue
            conf = checked_confidence(fixed, word_agreement(fixed.text, lm.text))
            if grammar_best is None or conf > grammar_best.confidence:
                grammar_best = StateDecode(fixed.text, conf, f"pocketsphinx/state-{state}-digits")
        if grammar_best is not None:
            best = grammar_best
    return best


def warm_up(states: tuple[str, ...] = EXPECTATIONS) -> None:
    """Build the state models and load their decoders now, not on the first answer."""
    for state in states:
        model = state_model(state)
        get_decoder("lm", model.lm, model.dictionary)
