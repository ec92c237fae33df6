"""pocketsphinx vs Whisper base for the speaker, side by side on the same audio.

bench/speaker.py measures one engine over the Wyoming server. This measures the
recognisers themselves through the speaker's own recognition function
(``bot.channels.speaker.wyoming_server.recognise``), every configuration on the
*same* synthesised clips:

* **English requests**: the held-out test requests of bench/speaker_requests.py
  (112 written for the speaker, minus any sentence that occurs in the NLU
  training data, from which pocketsphinx's domain language model is generated;
  see :func:`heldout_requests`) in four espeak voices, clean and with pink noise
  at 15 dB SNR: WER (both sides through :func:`speech.scoring.scoring_text`, the
  same normaliser for every engine), intent agreement (the NLU's intent on the
  transcript equals its intent on the written request), decode latency and
  real-time factor;
* **spoken PINs**: 6 digits said one by one, through the free-request path and
  through pocketsphinx's 6-digit grammar (what a PIN prompt can use): exact
  string and digit accuracy;
* **real voices saying PINs**: 6-digit strings joined from the Free Spoken Digit
  Dataset's recordings (three real speakers, 8 kHz; bench/speech.py's
  ``fsdd_strings``), the same two ways;
* **Chinese**: requests in espeak-ng's Mandarin voice (``cmn``), clean and at
  15 dB: character error rate and intent agreement (pocketsphinx has no Chinese
  model: the speaker refuses those with "ask in the chat");
* **memory**: resident-set growth of loading each engine and decoding once (the
  Whisper model is loaded once per process: only the first Whisper
  configuration of a run shows it).

``auto`` is the shipped default: pocketsphinx, and Whisper (short window, beam 5)
on the requests pocketsphinx is unsure of.

**Dialogue states.** Each request is decoded in the state in which a resident
would say it (:data:`STATE_OF_PURPOSE`): a PIN after the PIN prompt (``pin``), a
yes / no answer after a payment confirmation (``yes_no``), a link-code request on
an unpaired speaker (``link_code``), everything else in the idle state (no
expectation); the spoken PINs are decoded in the ``pin`` state. The state is
written in every row (``state``). ``--no-states`` decodes everything freely (the
earlier measurement); the ``-nostate`` configurations do that per engine.
Intent agreement is reported two ways: on the raw transcripts (as before), and on
what the speaker hands the dialogue for both texts
(``bot.channels.speaker.channel.dialogue_text``: spoken digits as figures, a PIN's
carrier phrase dropped after the PIN prompt), so "five two nine one eight zero"
and the transcript "529180" count as the same request. ``--set dev`` runs the
development requests (bench/speaker_dev_requests.py) instead of the test set.
Whisper's configurations differ in the encoder window, beam width and the domain
prompt.

Run (one benchmark at a time on the shared machine)::

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/speaker_engines.py [--quick]
        [--configs pocketsphinx,whisper-prompt-greedy,...]

Writes ``bench/results/speaker_engines.json`` (``--out`` to change) and
``bench/results/speaker_engines.png``, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import re
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

_spec = importlib.util.spec_from_file_location("bench_speech", ROOT / "bench" / "speech.py")
assert _spec is not None and _spec.loader is not None
bench_speech = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_speech)
_spec = importlib.util.spec_from_file_location(
    "speaker_requests", ROOT / "bench" / "speaker_requests.py"
)
assert _spec is not None and _spec.loader is not None
speaker_requests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speaker_requests)
_spec = importlib.util.spec_from_file_location(
    "speaker_dev_requests", ROOT / "bench" / "speaker_dev_requests.py"
)
assert _spec is not None and _spec.loader is not None
speaker_dev_requests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speaker_dev_requests)

#: The dialogue state a request of each purpose is said in (others: idle, None).
STATE_OF_PURPOSE = {
    "pin": "pin", "confirm": "yes_no", "deny": "yes_no", "link": "link_code",
    "choose_utility": "utility", "choose_method": "method",
}  # fmt: skip

VOICES = [("en-us", 165), ("en-us+f3", 150), ("en-gb", 175), ("en-us+m7", 140)]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CHINESE = [
    "我欠多少钱",
    "交水费",
    "电费为什么这么高",
    "燃气费什么时候到期",
    "查一下缴费记录",
    "我要交物业费",
    "这个月用了多少电",
    "给我发一张收据",
    "转人工客服",
    "开通自动缴费",
    "我的电费是多少",
    "水费什么时候到期",
]

#: Engine configurations (SpeakerSettings fields).
CONFIGS: dict[str, dict[str, Any]] = {
    "pocketsphinx": {"asr_engine": "pocketsphinx"},
    "auto": {"asr_engine": "auto"},
    "auto-nostate": {"asr_engine": "auto", "expectations": False},
    "auto-grammar-digits": {"asr_engine": "auto", "whisper_reads_digits": False},
    "auto-nolexicon": {"asr_engine": "auto", "whisper_lexicon": False},
    "whisper-short-beam5-nolexicon": {"asr_engine": "faster_whisper", "whisper_lexicon": False},
    "whisper-short-beam5": {"asr_engine": "faster_whisper"},
    "whisper-short-beam5-nostate": {"asr_engine": "faster_whisper", "expectations": False},
    "whisper-30s-beam5": {"asr_engine": "faster_whisper", "whisper_short_window": False},
    "whisper-30s-greedy": {
        "asr_engine": "faster_whisper",
        "whisper_short_window": False,
        "whisper_beam_size": 1,
    },
    "whisper-short-greedy": {"asr_engine": "faster_whisper", "whisper_beam_size": 1},
    "whisper-short-beam5-noprompt": {"asr_engine": "faster_whisper", "whisper_prompt": False},
    "whisper-fp32": {"asr_engine": "faster_whisper", "whisper_compute_type": "float32"},
    # Whisper alone with a longer idle prompt (PROMPT_VOCABULARY below): the domain's
    # words Whisper base misheard on the development set, in sentences of its own.
    "whisper-prompt-vocab": {"asr_engine": "faster_whisper", "_prompt": "vocabulary"},
    "auto-fp32": {"asr_engine": "auto", "whisper_compute_type": "float32"},
    "auto-prompt-vocab": {"asr_engine": "auto", "_prompt": "vocabulary"},
    # N-best rescoring (whisper_rescore): pocketsphinx's transcript and Whisper's 5 best,
    # scored by Whisper's forced decoding (+ the domain LM, + a word bonus). The rows
    # keep every candidate's scores (``candidates``) for --grid.
    "auto-rescore": {
        "asr_engine": "auto",
        "whisper_rescore": True,
        "rescore_only_unsure": False,
        "_record": True,
    },
    # The same with Whisper's prompt tokenised a word at a time (PROMPT_BY_WORD).
    "auto-rescore-wordprompt": {
        "asr_engine": "auto",
        "whisper_rescore": True,
        "rescore_only_unsure": False,
        "_record": True,
        "_prompt_by_word": True,
    },
}

#: The rescoring weights --grid tries on a run of ``auto-rescore`` (fixed before the run):
#: the domain LM's weight (on its natural-log probability) and a bonus per word (nats).
GRID_LM_WEIGHTS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6)
GRID_WORD_BONUSES = (0.0, 1.0, 2.0, 3.0, 4.0)
#: ``all``: every transcript rescored; ``unsure``: only when pocketsphinx is unsure (the
#: requests ``auto`` sends to Whisper; ``rescore_only_unsure``). Both choose as the
#: product does (``whisper_asr.choose`` with the clip's state: a PIN or link code must
#: have 6 digits) on the LM score recorded. ``before`` (``--point`` only): the choice of
#: the 18:43 rescoring, the domain LM read digit by digit (the fifth recorded field) and no
#: closed-answer rule.
GRID_MODES = ("all", "unsure")


#: A longer idle prompt for Whisper (bench configuration ``_prompt: vocabulary``): the
#: shipped prompt's sentences plus the bill words Whisper base misheard on the
#: development requests ("bills", "balance", "overdue", "payments", "speaker"), in
#: sentences written for it, none of them a development or test request.
PROMPT_VOCABULARY = (
    "How much is my electricity bill? What is my balance? Pay 150 yuan for water with "
    "Alipay or WeChat Pay. When is the gas bill due, and is any bill overdue? Show my "
    "payments. Why is my property fee so high? Pair or remove this speaker. Yes. No. "
    "My PIN is 4 7 1 9 2 3."
)


def rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _plain(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})", r"\1", text).lower()
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text))


def nlu_sentences() -> set[str]:
    """Every English NLU training example, annotations stripped, lower case, no punctuation."""
    import yaml

    out: set[str] = set()
    for file in sorted((ROOT / "nlu" / "data" / "en").rglob("*.yml")):
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for block in doc.get("nlu", []) or []:
            examples = block.get("examples", "") if isinstance(block, dict) else ""
            if isinstance(examples, str):
                for line in examples.splitlines():
                    if line.strip().startswith("- "):
                        out.add(_plain(line.strip()[2:]))
    return out


def purposes(dataset: str = "test") -> dict[str, str]:
    """Request -> purpose, of the test (bench/speaker_requests.py) or development set."""
    source = speaker_dev_requests if dataset == "dev" else speaker_requests
    return dict(source.REQUESTS)


def heldout_requests(n: int, dataset: str = "test") -> tuple[list[str], list[str]]:
    """The first ``n`` requests of bench/speaker_requests.py that are *not* NLU training sentences.

    The test set was written for the speaker and never used to tune a recogniser
    (bench/speech.py's requests are the development set). pocketsphinx's language
    model is generated from the NLU data, so a request that is also a training
    sentence would be measured on its own training set: those are dropped. The
    comparison is exact (annotations, case and punctuation removed); requests that
    share a template with training data ("pay <amount> for <utility>") with other
    amounts stay, as they would in real use. Returns (kept, dropped).
    """
    seen = nlu_sentences()
    written = list(purposes(dataset))
    if dataset == "dev":
        leaked = set(written) & set(purposes("test"))
        if leaked:
            raise SystemExit(f"development requests that are test requests: {sorted(leaked)}")
    kept = [u for u in written if _plain(u) not in seen]
    dropped = [u for u in written if _plain(u) in seen]
    return kept[:n], dropped


def pcm_of(text: str, voice: str, speed: int, lang: str = "en") -> np.ndarray:
    """espeak-ng audio as 16 kHz float samples (leading/trailing silence kept)."""
    from speech.audio import load_audio
    from speech.tts import synthesize

    wav = synthesize(text, voice=voice, speed=speed, lang=lang)  # type: ignore[arg-type]
    return load_audio(wav, trim=False).samples


def to_pcm(samples: np.ndarray) -> bytes:
    """Float samples as 16-bit PCM bytes."""
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate (spaces and punctuation ignored), for Chinese."""
    from speech.recognize import word_error_rate

    def chars(s: str) -> str:
        return " ".join(c for c in s if c.isalnum())

    return word_error_rate(chars(reference), chars(hypothesis))


def build_clips(
    quick: bool, seed: int, n_requests: int, dataset: str = "test", states: bool = True
) -> dict[str, Any]:
    """The shared audio: requests, PINs and Chinese, each clip with its reference and the
    dialogue state it is decoded in (``state``; None everywhere without ``states``)."""
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    requests, dropped = heldout_requests(6 if quick else n_requests, dataset)
    purpose = purposes(dataset)
    clips: list[dict[str, Any]] = []
    for text in tqdm(requests, desc="synthesise requests", file=sys.stderr):
        state = STATE_OF_PURPOSE.get(purpose[text]) if states else None
        for voice, speed in VOICES:
            clean = pcm_of(text, voice, speed)
            for cond in ("clean", "snr15"):
                samples = clean if cond == "clean" else bench_speech.mix(clean, 15.0, rng)
                clips.append(
                    {"kind": "request", "text": text, "voice": voice, "condition": cond,
                     "samples": samples, "state": state, "purpose": purpose[text]}
                )  # fmt: skip
    pin_state = "pin" if states else None
    for voice, speed in VOICES:
        for _ in range(2 if quick else 5):
            digits = "".join(pyrng.choice("0123456789") for _ in range(6))
            said = " ".join(DIGIT_WORDS[int(d)] for d in digits)
            clips.append(
                {"kind": "pin", "text": digits, "voice": voice, "condition": "clean",
                 "samples": pcm_of(said, voice, speed), "state": pin_state}
            )  # fmt: skip
    for digits, files, speaker in bench_speech.fsdd_strings(6 if quick else 20, 6, seed):
        from speech.audio import load_audio

        parts: list[np.ndarray] = []
        for f in files:
            parts += [load_audio(f, trim=False).samples, np.zeros(2400, np.float32)]
        clips.append(
            {"kind": "pin_real", "text": digits, "voice": f"fsdd-{speaker}",
             "condition": "clean", "samples": np.concatenate(parts), "state": pin_state}
        )  # fmt: skip
    for text in CHINESE[:4] if quick else CHINESE:
        clean = pcm_of(text, "cmn", 160, "zh")
        for cond in ("clean", "snr15"):
            samples = clean if cond == "clean" else bench_speech.mix(clean, 15.0, rng)
            clips.append(
                {"kind": "zh", "text": text, "voice": "cmn", "condition": cond,
                 "samples": samples, "state": None}
            )  # fmt: skip
    return {"clips": clips, "requests": requests, "dropped_as_training": dropped}


def run_config(name: str, clips: list[dict[str, Any]], model: Any) -> dict[str, Any]:
    """Every clip through the speaker's recogniser with configuration ``name``."""
    from bot.channels.speaker import whisper_asr, wyoming_server
    from bot.channels.speaker.channel import dialogue_text, spoken_figures
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise
    from speech.recognize import recognize_digits
    from speech.scoring import scored_wer

    fields = {k: v for k, v in CONFIGS[name].items() if not k.startswith("_")}
    settings = SpeakerSettings(**fields)
    shipped_prompt = whisper_asr.PROMPT
    if CONFIGS[name].get("_prompt") == "vocabulary":
        whisper_asr.PROMPT = PROMPT_VOCABULARY  # this process only; restored below
    shipped_by_word = whisper_asr.PROMPT_BY_WORD
    if "_prompt_by_word" in CONFIGS[name]:
        whisper_asr.PROMPT_BY_WORD = CONFIGS[name]["_prompt_by_word"]
    whisper = settings.asr_engine == "faster_whisper"
    recorded: list[list[Any]] = []
    engines: dict[str, Any] = {}
    shipped_choose = whisper_asr.choose
    shipped_candidates = whisper_asr.candidates
    shipped_rescored = wyoming_server._rescored
    if CONFIGS[name].get("_record"):
        from speech.lm_score import domain_lm

        def recording_choose(
            found: list[Any], lm_weight: float, word_bonus: float, expect: Any = None
        ) -> Any:
            # The fifth field: the domain LM's score as the 18:43 rescoring read it (digits
            # one by one, no state LM), for --point ...,before,... (the earlier choice).
            recorded[:] = [
                [c.text, c.acoustic, c.lm, c.source,
                 domain_lm().score(c.text.split()) * math.log(10)]
                for c in found
            ]  # fmt: skip
            return shipped_choose(found, lm_weight, word_bonus, expect)

        def recording_candidates(samples: Any, others: dict[str, str], **kw: Any) -> Any:
            found, own = shipped_candidates(samples, others, **kw)
            engines["whisper"] = list(own)  # Whisper's own (text, confidence, weak)
            return found, own

        def recording_rescored(said: Any, text: str, confidence: float, *, weak: bool) -> Any:
            engines["pocketsphinx"] = [text, weak]
            return shipped_rescored(said, text, confidence, weak=weak)

        whisper_asr.choose = recording_choose
        whisper_asr.candidates = recording_candidates
        wyoming_server._rescored = recording_rescored
    before = rss_mb()
    t0 = time.perf_counter()
    recognise(to_pcm(pcm_of("how much do I owe", "en-us", 165)), settings=settings)
    load_s = time.perf_counter() - t0
    rss_growth = rss_mb() - before
    rows: list[dict[str, Any]] = []
    for clip in tqdm(clips, desc=name, file=sys.stderr):
        duration = len(clip["samples"]) / 16_000
        lang = "zh" if clip["kind"] == "zh" else "en"
        t = time.perf_counter()
        state = clip.get("state")
        recorded.clear()
        engines.clear()
        heard = recognise(to_pcm(clip["samples"]), settings=settings, language=lang, expect=state)
        seconds = time.perf_counter() - t
        row = {k: clip.get(k) for k in ("kind", "text", "voice", "condition", "state", "purpose")}
        if recorded:
            row["candidates"] = list(recorded)
        if "whisper" in engines:
            # What ``auto`` without rescoring hears from the same decodes: pocketsphinx's
            # transcript unless it is unsure and Whisper is sure (_recognise_free).
            row["whisper_own"] = engines["whisper"]
            row["pocketsphinx_own"] = engines["pocketsphinx"]
            sphinx_text, sphinx_weak = engines["pocketsphinx"]
            whisper_text, _, whisper_weak = engines["whisper"]
            row["auto_text"] = whisper_text if sphinx_weak and not whisper_weak else sphinx_text
        row.update(heard=heard.text, weak=heard.weak, error=heard.error, s=seconds,
                   confidence=heard.confidence,
                   engine=heard.engine, rtf=seconds / duration,
                   decoded_in=heard.expect)  # fmt: skip
        if clip["kind"] == "request":
            row["wer"] = scored_wer(clip["text"], heard.text)
            row["intent_text"] = model.parse(clip["text"])["intent"]["name"]
            row["intent_audio"] = model.parse(heard.text or "")["intent"]["name"]
            row["intent_text_dialogue"] = model.parse(dialogue_text(clip["text"], state))["intent"][
                "name"
            ]
            row["intent_audio_dialogue"] = model.parse(dialogue_text(heard.text or "", state))[
                "intent"
            ]["name"]
        elif clip["kind"] in ("pin", "pin_real"):
            got = "".join(c for c in spoken_figures(heard.text) if c.isdigit())
            row["got"] = got
            row["exact"] = got == clip["text"]
            row["digit_acc"] = sum(a == b for a, b in zip(got, clip["text"], strict=False)) / 6
            if not whisper and not state:  # the bare 6-digit grammar (a known length of 6)
                from bot.channels.speaker.wyoming_server import pcm_to_wav

                t = time.perf_counter()
                grammar = recognize_digits(pcm_to_wav(to_pcm(clip["samples"])), expected_len=6)
                row["grammar_s"] = time.perf_counter() - t
                row["grammar_got"] = grammar.digits or ""
                row["grammar_exact"] = grammar.digits == clip["text"]
                row["grammar_digit_acc"] = (
                    sum(a == b for a, b in zip(grammar.digits or "", clip["text"], strict=False))
                    / 6
                )
        else:
            row["cer"] = cer(clip["text"], heard.text) if not heard.error else 1.0
            row["intent_text"] = model.parse(clip["text"])["intent"]["name"]
            row["intent_audio"] = model.parse(heard.text or "")["intent"]["name"]
        rows.append(row)
    whisper_asr.PROMPT = shipped_prompt
    whisper_asr.PROMPT_BY_WORD = shipped_by_word
    whisper_asr.choose = shipped_choose
    whisper_asr.candidates = shipped_candidates
    wyoming_server._rescored = shipped_rescored
    return {
        "config": name,
        "settings": CONFIGS[name],
        "load_and_first_decode_s": load_s,
        "rss_growth_mb": rss_growth,
        "rows": rows,
        "summary": summarise(rows),
    }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95 % interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_wer(rows: list[dict[str, Any]], n: int = 2000, seed: int = 1) -> tuple[float, float]:
    """95 % interval of the mean WER, resampling requests (a request's voices stay together)."""
    by_text: dict[str, list[float]] = {}
    for r in rows:
        by_text.setdefault(r["text"], []).append(r["wer"])
    groups = list(by_text.values())
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n):
        pick = rng.integers(0, len(groups), len(groups))
        values = [v for i in pick for v in groups[i]]
        means.append(sum(values) / len(values))
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def _q(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q * 100)) if values else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind and condition: error rates, agreement, latency and real-time factor."""
    out: dict[str, Any] = {}
    for kind, cond in (("request", "clean"), ("request", "snr15"), ("zh", "clean"),
                       ("zh", "snr15"), ("pin", "clean"), ("pin_real", "clean")):  # fmt: skip
        sel = [r for r in rows if r["kind"] == kind and r["condition"] == cond]
        if not sel:
            continue
        entry: dict[str, Any] = {
            "n": len(sel),
            "s_median": _q([r["s"] for r in sel], 0.5),
            "s_p95": _q([r["s"] for r in sel], 0.95),
            "rtf_median": _q([r["rtf"] for r in sel], 0.5),
            "weak": statistics.mean(bool(r["weak"]) for r in sel),
        }
        if kind == "request":
            entry["wer"] = statistics.mean(r["wer"] for r in sel)
        if kind == "zh":
            entry["cer"] = statistics.mean(r["cer"] for r in sel)
        if kind == "request":
            entry["wer_ci95"] = bootstrap_wer(sel)
            agree = [r["intent_audio_dialogue"] == r["intent_text_dialogue"] for r in sel]
            entry["intent_agreement_dialogue"] = statistics.mean(agree)
            entry["intent_agreement_dialogue_ci95"] = wilson(sum(agree), len(agree))
            entry["by_purpose"] = {
                p: {
                    "n": len(group),
                    "wer": statistics.mean(r["wer"] for r in group),
                    "agreement_dialogue": statistics.mean(
                        r["intent_audio_dialogue"] == r["intent_text_dialogue"] for r in group
                    ),
                    "state": group[0].get("state"),
                }
                for p in sorted({r.get("purpose") or "" for r in sel})
                for group in [[r for r in sel if (r.get("purpose") or "") == p]]
            }
        if kind in ("request", "zh"):
            entry["intent_agreement"] = statistics.mean(
                r["intent_audio"] == r["intent_text"] for r in sel
            )
            sure = [r for r in sel if not r["weak"]]
            entry["intent_agreement_not_weak"] = (
                statistics.mean(r["intent_audio"] == r["intent_text"] for r in sure)
                if sure
                else 0.0
            )
            entry["by_whisper"] = statistics.mean(r.get("engine") == "faster_whisper" for r in sel)
        if kind in ("pin", "pin_real"):
            entry["exact"] = statistics.mean(r["exact"] for r in sel)
            entry["digit_acc"] = statistics.mean(r["digit_acc"] for r in sel)
            if "grammar_exact" in sel[0]:
                entry["grammar_exact"] = statistics.mean(r["grammar_exact"] for r in sel)
                entry["grammar_digit_acc"] = statistics.mean(r["grammar_digit_acc"] for r in sel)
                entry["grammar_s_median"] = _q([r["grammar_s"] for r in sel], 0.5)
        out[f"{kind}_{cond}"] = entry
    return out


def markdown(data: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    meta = data["meta"]
    lines = [
        f"Machine: {meta['machine']}; {meta['date']}; load average {meta['load_before']} before,"
        f" {meta['load_after']} after; command: `{meta['command']}`",
        "",
        "| engine | requests WER clean / 15 dB | intent agreement clean / 15 dB | decode median"
        " / p95 (clean) | weak clean / 15 dB (agreement when not weak) |"
        " RTF median | Chinese CER clean / 15 dB | Chinese intent agreement |"
        " espeak PIN exact (free / 6-digit grammar) | real-voice PIN exact (free / grammar) |"
        " memory (RSS growth) | load + first decode |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["engines"]:
        s = r["summary"]
        rc, rn = s.get("request_clean", {}), s.get("request_snr15", {})
        zc, zn = s.get("zh_clean", {}), s.get("zh_snr15", {})
        pin = s.get("pin_clean", {})
        real = s.get("pin_real_clean", {})
        grammar = f" / {pin['grammar_exact']:.0%}" if "grammar_exact" in pin else ""
        real_grammar = f" / {real['grammar_exact']:.0%}" if "grammar_exact" in real else ""
        zh_agree = (
            (zc.get("intent_agreement", 0) * zc.get("n", 0)
             + zn.get("intent_agreement", 0) * zn.get("n", 0)) / max(1, zc.get("n", 0)
                                                                      + zn.get("n", 0))
        )  # fmt: skip
        lines.append(
            f"| {r['config']} | {rc.get('wer', 0):.1%} / {rn.get('wer', 0):.1%} (n={rc.get('n')}"
            f" each) | {rc.get('intent_agreement', 0):.1%} / {rn.get('intent_agreement', 0):.1%} |"
            f" {rc.get('s_median', 0):.2f} / {rc.get('s_p95', 0):.2f} s |"
            f" {rc.get('weak', 0):.0%} / {rn.get('weak', 0):.0%}"
            f" ({rc.get('intent_agreement_not_weak', 0):.1%}"
            f" / {rn.get('intent_agreement_not_weak', 0):.1%}) |"
            f" {rc.get('rtf_median', 0):.2f} | {zc.get('cer', 1):.1%} / {zn.get('cer', 1):.1%}"
            f" (n={zc.get('n')} each) | {zh_agree:.1%} | {pin.get('exact', 0):.0%}{grammar}"
            f" (n={pin.get('n')}) | "
            + (f"{real['exact']:.0%}{real_grammar} (n={real['n']})" if real else "not run")
            + " |"
            f" {r['rss_growth_mb']:.0f} MB |"
            f" {r['load_and_first_decode_s']:.1f} s |"
        )
    lines += [
        "",
        "| engine | WER clean (95 % CI) | WER 15 dB (95 % CI) | agreement, dialogue text,"
        " clean (95 % CI) | 15 dB (95 % CI) | agreement, raw transcripts, clean / 15 dB |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["engines"]:
        s = r["summary"]
        cells = []
        for key in ("request_clean", "request_snr15"):
            e = s.get(key, {})
            lo, hi = e.get("wer_ci95", (0, 0))
            cells.append(f"{e.get('wer', 0):.1%} ({lo:.1%}-{hi:.1%})")
        for key in ("request_clean", "request_snr15"):
            e = s.get(key, {})
            lo, hi = e.get("intent_agreement_dialogue_ci95", (0, 0))
            cells.append(f"{e.get('intent_agreement_dialogue', 0):.1%} ({lo:.1%}-{hi:.1%})")
        rc, rn = s.get("request_clean", {}), s.get("request_snr15", {})
        cells.append(f"{rc.get('intent_agreement', 0):.1%} / {rn.get('intent_agreement', 0):.1%}")
        lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    lines += ["", "WER / agreement (dialogue text) by purpose, clean | 15 dB:", ""]
    purposes_seen = sorted(
        {
            p
            for r in data["engines"]
            for p in r["summary"].get("request_clean", {}).get("by_purpose", {})
        }
    )
    lines.append("| engine | " + " | ".join(purposes_seen) + " |")
    lines.append("|---|" + "---|" * len(purposes_seen))
    for r in data["engines"]:
        cells = []
        for p in purposes_seen:
            c = r["summary"].get("request_clean", {}).get("by_purpose", {}).get(p, {})
            n = r["summary"].get("request_snr15", {}).get("by_purpose", {}).get(p, {})
            cells.append(
                f"{c.get('wer', 0):.0%} {c.get('agreement_dialogue', 0):.0%} |"
                f" {n.get('wer', 0):.0%} {n.get('agreement_dialogue', 0):.0%}"
                f" ({c.get('state') or 'idle'})"
            )
        lines.append(
            f"| {r['config']} | " + " | ".join(c.replace(" | ", " / ") for c in cells) + " |"
        )
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    """WER / agreement and decode time per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["config"] for r in data["engines"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(names))
    for k, (key, label) in enumerate([("request_clean", "clean"), ("request_snr15", "15 dB")]):
        wer = [r["summary"].get(key, {}).get("wer", 0) * 100 for r in data["engines"]]
        agree = [
            (1 - r["summary"].get(key, {}).get("intent_agreement", 1)) * 100
            for r in data["engines"]
        ]
        axes[0].bar(x + (k - 0.5) * 0.2 - 0.2, wer, 0.2, label=f"WER {label}")
        axes[0].bar(x + (k - 0.5) * 0.2 + 0.2, agree, 0.2, label=f"intent disagreement {label}")
    axes[0].axhline(8, color="red", linestyle="--", label="WER target 8 %")
    axes[0].axhline(3, color="purple", linestyle=":", label="disagreement target 3 %")
    axes[0].set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=7)
    secs = [
        [r["s"] for r in e["rows"] if r["kind"] == "request" and r["condition"] == "clean"]
        for e in data["engines"]
    ]
    axes[1].boxplot(secs, showfliers=True)
    axes[1].set_xticks(x + 1, names, rotation=20, ha="right", fontsize=8)
    axes[1].set_ylabel("decode seconds per request (clean)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rescore(path: Path) -> None:
    """Recompute WERs and summaries of a results file with the current scoring normaliser."""
    from speech.scoring import scored_wer

    data = json.loads(path.read_text())
    for engine in data["engines"]:
        for row in engine["rows"]:
            if row["kind"] == "request":
                row["wer"] = scored_wer(row["text"], row["heard"])
        engine["summary"] = summarise(engine["rows"])
    data["meta"]["rescored"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    print(markdown(data))


def relm(data: dict[str, Any], state_lm: bool = True) -> None:
    """Score every recorded candidate's text again with the rescoring LM as the product
    reads it now (``whisper_asr.lm_words``; the dialogue state's LM when ``state_lm`` and
    the clip has a state), keeping the recorded score last (``before``'s): a run recorded
    before a change of the LM is chosen from as the product would now."""
    from bot.channels.speaker.whisper_asr import lm_words
    from speech.lm_score import domain_lm
    from speech.lm_score import state_lm as lm_of_state

    for engine in data["engines"]:
        for r in engine["rows"]:
            lm = lm_of_state(r["state"]) if state_lm and r.get("state") else domain_lm()
            r["candidates"] = [
                [c[0], c[1], lm.score(lm_words(c[0])) * math.log(10), c[3], c[-1] if len(c) > 4
                 else c[2]]
                for c in r.get("candidates") or []
            ]  # fmt: skip


def grid(
    path: Path,
    baseline: str = "auto",
    only: tuple[str, str, float, float] | None = None,
    rescore_lm: bool = False,
    idle: bool = False,
) -> None:
    """The rescoring weights of :data:`GRID_LM_WEIGHTS` x :data:`GRID_WORD_BONUSES` applied
    to the candidates each recording configuration of the run (``auto-rescore``,
    ``auto-rescore-wordprompt``) recorded, beside ``baseline`` of the same run.

    Choice rule (fixed before the run): the lowest mean WER of the clean and 15 dB
    conditions among the (configuration, point)s whose mean agreement (dialogue text) is
    not lower than ``baseline``'s; shipped only if that WER is lower than ``baseline``'s.
    ``only`` (configuration, mode, LM weight, word bonus): that point alone, with its
    intervals, and no choice (the test set, once the development set has chosen).
    ``idle``: the weights apply to the idle requests only (no state; mode ``all``), the
    expected answers keep the product's (``rescore_lm_weight``, ``rescore_word_bonus``):
    ``rescore_idle_lm_weight`` was chosen this way (2026-12-08).
    """
    from bot.channels.speaker.settings import SpeakerSettings

    shipped = SpeakerSettings()
    answers = (shipped.rescore_lm_weight, shipped.rescore_word_bonus)
    import nlu
    from bot.channels.speaker.channel import dialogue_text
    from bot.channels.speaker.whisper_asr import Candidate, choose
    from speech.scoring import scored_wer

    data = json.loads(path.read_text())
    if rescore_lm:
        relm(data)
    runs = {e["config"]: e for e in data["engines"]}
    model = nlu.load_model()
    parse_cache: dict[str, str] = {}

    def intent(text: str) -> str:
        if text not in parse_cache:
            parse_cache[text] = model.parse(text)["intent"]["name"]
        return parse_cache[text]

    def figures(rows: list[dict[str, Any]]) -> tuple[float, float, float, float]:
        out: list[float] = []
        for cond in ("clean", "snr15"):
            sel = [r for r in rows if r["kind"] == "request" and r["condition"] == cond]
            out.append(statistics.mean(r["wer"] for r in sel))
            out.append(
                statistics.mean(
                    r["intent_audio_dialogue"] == r["intent_text_dialogue"] for r in sel
                )
            )
        return out[0], out[2], out[1], out[3]

    chosen_rows: list[dict[str, Any]] = []
    if baseline in runs:
        base_rows = runs[baseline]["rows"]
        base = figures(base_rows)
    else:  # ``auto`` rebuilt from a rescoring run's own decodes (``auto_text``)
        config = next(c for c in runs if CONFIGS.get(c, {}).get("_record"))
        rebuilt = []
        for r in runs[config]["rows"]:
            if r["kind"] == "request" and "auto_text" in r:
                text = r["auto_text"]
                said = intent(dialogue_text(text, r["state"]))
                r = dict(r, heard=text, wer=scored_wer(r["text"], text),
                         intent_audio_dialogue=said)  # fmt: skip
            rebuilt.append(r)
        base_rows = rebuilt
        base = figures(rebuilt)
        baseline = f"{baseline} (rebuilt from {config}'s decodes)"
    print("| weights | WER clean | WER 15 dB | agreement clean | agreement 15 dB | mean WER |")
    print("|---|---|---|---|---|---|")
    print(f"| {baseline} | {base[0]:.1%} | {base[1]:.1%} | {base[2]:.1%} | {base[3]:.1%} | "
          f"{(base[0] + base[1]) / 2:.2%} |")  # fmt: skip
    best: tuple[float, str] | None = None
    points = [
        (config, mode, lm_weight, bonus)
        for config in runs
        if CONFIGS.get(config, {}).get("_record")
        for mode in (("all",) if idle else GRID_MODES)
        for lm_weight in GRID_LM_WEIGHTS
        for bonus in GRID_WORD_BONUSES
    ]
    if only is not None:
        points = [only]
    for config, mode, lm_weight, bonus in points:
        rows = []
        for r in runs[config]["rows"]:
            sure = not r.get("pocketsphinx_own", ["", True])[1]
            if r["kind"] == "request" and mode == "unsure" and sure and "auto_text" in r:
                text = r["auto_text"]  # pocketsphinx's, kept
                said = intent(dialogue_text(text, r["state"]))
                r = dict(r, heard=text, wer=scored_wer(r["text"], text),
                         intent_audio_dialogue=said)  # fmt: skip
            elif r["kind"] == "request" and r.get("candidates") and mode == "before":
                found = [Candidate(c[0], c[1], c[4 if len(c) > 4 else 2], c[3])
                         for c in r["candidates"]]  # fmt: skip
                text = max(found, key=lambda c: c.score(lm_weight, bonus)).text
                said = intent(dialogue_text(text, r["state"]))
                r = dict(r, heard=text, wer=scored_wer(r["text"], text),
                         intent_audio_dialogue=said)  # fmt: skip
            elif r["kind"] == "request" and r.get("candidates"):
                found = [Candidate(c[0], c[1], c[2], c[3]) for c in r["candidates"]]
                weights = answers if idle and r["state"] else (lm_weight, bonus)
                text = choose(found, *weights, r["state"]).text
                said = intent(dialogue_text(text, r["state"]))
                r = dict(r, heard=text, wer=scored_wer(r["text"], text),
                         intent_audio_dialogue=said)  # fmt: skip
            rows.append(r)
        f = figures(rows)
        mean_wer = (f[0] + f[1]) / 2
        ok = (f[2] + f[3]) / 2 >= (base[2] + base[3]) / 2
        label = f"{config}, {mode}, lm {lm_weight} / word {bonus}"
        print(f"| {label} | {f[0]:.1%} | {f[1]:.1%} | {f[2]:.1%} | {f[3]:.1%} | "
              f"{mean_wer:.2%}{'' if ok else ' (agreement lower)'} |")  # fmt: skip
        if (ok or only) and (best is None or mean_wer < best[0]):
            best = (mean_wer, label)
            chosen_rows = rows
    if only is None and (best is None or best[0] >= (base[0] + base[1]) / 2):
        print(f"choice: none beats {baseline}")
        return
    assert best is not None
    print(f"{'point' if only else 'choice'}: {best[1]} (mean WER {best[0]:.2%})")
    for name, chosen in (("baseline", base_rows), ("chosen", chosen_rows)):
        summary = summarise(chosen)
        for cond in ("clean", "snr15"):
            e = summary[f"request_{cond}"]
            lo, hi = e["wer_ci95"]
            alo, ahi = e["intent_agreement_dialogue_ci95"]
            print(f"{name} {cond}: WER {e['wer']:.1%} ({lo:.1%}-{hi:.1%}), agreement "
                  f"{e['intent_agreement_dialogue']:.1%} ({alo:.1%}-{ahi:.1%})")  # fmt: skip
            if only is not None:
                print("   by purpose:", {
                    p: f"{v['wer']:.0%} / {v['agreement_dialogue']:.0%}"
                    for p, v in e["by_purpose"].items()
                })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--requests", type=int, default=200, help="Held-out requests (x4 voices); 0: none."
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="Comma-separated names.")
    parser.add_argument(
        "--set", dest="dataset", choices=("test", "dev"), default="test",
        help="test: bench/speaker_requests.py (held out); dev: bench/speaker_dev_requests.py.",
    )  # fmt: skip
    parser.add_argument(
        "--no-states", action="store_true", help="Decode every request freely (no dialogue state)."
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "speaker_engines.json")
    parser.add_argument("--report", type=Path, help="Only print the table of a results file.")
    parser.add_argument(
        "--rescore",
        type=Path,
        help="Score a results file's transcripts again with speech.scoring (rewrites it).",
    )
    parser.add_argument(
        "--grid",
        type=Path,
        help="Apply the rescoring weight grid to an auto-rescore run's candidates (prints).",
    )
    parser.add_argument(
        "--point", help="With --grid: CONFIG,MODE,LM_WEIGHT,WORD_BONUS alone (no choice)."
    )
    parser.add_argument(
        "--relm",
        action="store_true",
        help="With --grid: score the recorded candidates with the product's LM as it is now "
        "(state LM, digit strings as one number) before choosing.",
    )
    parser.add_argument(
        "--idle",
        action="store_true",
        help="With --grid: the weights for idle requests only; expected answers keep the "
        "product's rescore_lm_weight / rescore_word_bonus.",
    )
    args = parser.parse_args()
    if args.grid:
        point = args.point.split(",") if args.point else None
        grid(
            args.grid,
            only=(point[0], point[1], float(point[2]), float(point[3])) if point else None,
            rescore_lm=args.relm,
            idle=args.idle,
        )
        return
    if args.rescore:
        rescore(args.rescore)
        return
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return
    from billtalk.logs import configure_logging

    configure_logging("WARNING")
    import nlu

    nlu.ensure_default_model()
    model = nlu.load_model()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    started = time.time()
    audio = build_clips(
        args.quick, args.seed, args.requests, args.dataset, states=not args.no_states
    )
    results = [run_config(name, audio["clips"], model) for name in args.configs.split(",")]
    meta = {
        "machine": f"{platform.machine()}, {platform.python_version()}, shared 2 vCPU, "
        f"nice {os.nice(0)}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/speaker_engines.py"
        + (" --quick" if args.quick else "")
        + (f" --configs {args.configs}" if args.configs != ",".join(CONFIGS) else "")
        + (" --set dev" if args.dataset == "dev" else "")
        + (" --no-states" if args.no_states else ""),
        "dataset": args.dataset,
        "states": not args.no_states,
        "state_of_purpose": STATE_OF_PURPOSE,
        "elapsed_s": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "requests": audio["requests"],
        "dropped_as_training_sentences": audio["dropped_as_training"],
        "heldout_rule": "requests equal to an NLU training sentence (annotations, case and "
        "punctuation removed) are not used",
    }
    data = {"meta": meta, "engines": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    plot(data, args.out.with_suffix(".png"))
    print(markdown(data))


if __name__ == "__main__":
    main()
