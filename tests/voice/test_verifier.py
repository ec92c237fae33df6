"""The voice step-up verifier, end to end: real digit recognition, real voiceprints.

A synthetic speaker (espeak-ng, generated here) enrolls by saying five
prompted digit strings and answers challenges; real speakers (FSDD) are used for
impostor attempts.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.voice_synth import write_wav
from billtalk.db import make_engine
from biometrics.crypto import TemplateCipher
from biometrics.store import TemplateStore, ensure_schema
from biometrics.voice.challenge import check_digits, digit_errors, hear_digits
from biometrics.voice.enrollment import EnrollmentSample, enroll
from biometrics.voice.settings import get_voice_settings
from biometrics.voice.verifier import PROMPT_KEY, VoiceVerifier
from verification import Challenge, Decision, Evidence, VerificationKind, Verifier

from .conftest import FsddFactory, noise_wav, silence_wav

# espeak-ng's en-us voice, read slowly over a faint room noise: the synthetic
# voice the shipped digit recogniser hears best (see docs/voice.md).
VOICE = {"voice": "en-us", "speed": 120, "snr_db": 30.0}
RESIDENT = "res-voice-1"


def audio(data: bytes) -> Evidence:
    return Evidence(media="audio", data=data, mime_type="audio/wav")


@pytest.fixture(scope="module")
def enrolled(
    tmp_path_factory: pytest.TempPathFactory, espeak: Callable[..., bytes]
) -> TemplateStore:
    """One synthetic resident enrolled by speaking five prompts (shared by the module)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('voice') / 'enrolled.db'}"
    ensure_schema(url)
    store = TemplateStore(make_engine(url), TemplateCipher("voice-test-secret"))
    prompts = ["471902", "028365", "556174", "903728", "184250"]
    samples = [EnrollmentSample(espeak(p, seed=i, **VOICE), p) for i, p in enumerate(prompts)]
    enroll(store, RESIDENT, samples, actor=f"resident:{RESIDENT}")
    return store


#: Challenges the recogniser hears right for VOICE (checked once; the synthesis and
#: the decoder are deterministic), so the accept tests cannot flake on the ~7% of
#: random strings it mishears. Randomness itself is tested on ``start`` below.
HEARD_WELL = ["471902", "385026", "916473", "602857", "139584", "750318"]


def scripted_digits() -> Callable[[int], str]:
    queue = itertools.cycle(HEARD_WELL)
    return lambda length: next(queue)[:length]


@pytest.fixture
def verifier(enrolled: TemplateStore) -> VoiceVerifier:
    return VoiceVerifier(enrolled, digit_source=scripted_digits())


def test_implements_the_verifier_protocol(verifier: VoiceVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.kind is VerificationKind.VOICE


async def test_start_issues_a_fresh_six_digit_challenge(enrolled: TemplateStore) -> None:
    verifier = VoiceVerifier(enrolled)  # the real CSPRNG digits
    first = await verifier.start(RESIDENT)
    second = await verifier.start(RESIDENT)
    assert first.kind is VerificationKind.VOICE
    assert first.prompt_key == PROMPT_KEY == "verify_voice_prompt"
    assert first.accepts == ("audio",)
    digits = first.state["digits"]
    assert len(digits) == 6 and digits.isdigit()
    assert first.params["digits"] == " ".join(digits)
    assert first.expires_at - first.issued_at == timedelta(seconds=60)
    assert first.challenge_id != second.challenge_id
    assert Challenge.from_dict(first.to_dict()) == first  # survives persistence


async def test_is_enrolled(verifier: VoiceVerifier) -> None:
    assert await verifier.is_enrolled(RESIDENT)
    assert not await verifier.is_enrolled("someone-else")


async def test_genuine_speaker_saying_the_challenge_is_accepted(
    verifier: VoiceVerifier, espeak: Callable[..., bytes]
) -> None:
    challenge = await verifier.start(RESIDENT)
    result = await verifier.verify(
        RESIDENT, challenge, audio(espeak(challenge.state["digits"], seed=7, **VOICE))
    )
    assert result.decision is Decision.ACCEPT, result.to_log()
    assert result.reason == "match"
    assert result.liveness is True
    assert result.score is not None and result.score >= result.threshold  # type: ignore[operator]
    assert result.threshold == get_voice_settings().match_threshold
    log = result.to_log()
    assert set(log["details"]) >= {"voiced_s", "digit_errors", "elapsed_ms"}


async def test_replay_of_an_old_challenge_is_rejected(
    verifier: VoiceVerifier, espeak: Callable[..., bytes]
) -> None:
    old = await verifier.start(RESIDENT)
    recording = espeak(old.state["digits"], seed=8, **VOICE)
    assert (await verifier.verify(RESIDENT, old, audio(recording))).passed
    new = await verifier.start(RESIDENT)
    # The genuine voice, but saying the digits of the old challenge.
    result = await verifier.verify(RESIDENT, new, audio(recording))
    assert result.decision is Decision.REJECT
    assert result.reason == "wrong_digits"
    assert result.liveness is False
    assert result.score is not None and result.score >= result.threshold  # type: ignore[operator]


async def test_wrong_digits_are_rejected(
    verifier: VoiceVerifier, espeak: Callable[..., bytes]
) -> None:
    challenge = await verifier.start(RESIDENT)
    expected = challenge.state["digits"]
    wrong = "".join(str((int(d) + 5) % 10) for d in expected)  # every digit differs
    result = await verifier.verify(RESIDENT, challenge, audio(espeak(wrong, seed=9, **VOICE)))
    assert result.decision is Decision.REJECT
    assert result.reason == "wrong_digits"


async def test_expired_challenge_is_rejected(
    enrolled: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    clock = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    verifier = VoiceVerifier(enrolled, now=lambda: clock[0], digit_source=scripted_digits())
    challenge = await verifier.start(RESIDENT)
    answer = audio(espeak(challenge.state["digits"], seed=10, **VOICE))
    clock[0] += timedelta(seconds=61)
    result = await verifier.verify(RESIDENT, challenge, answer)
    assert result.decision is Decision.REJECT
    assert result.reason == "expired"


async def test_impostor_saying_the_right_digits_is_rejected(
    store: TemplateStore, fsdd_wav: FsddFactory
) -> None:
    # george enrolls (staff import of real recordings); jackson answers george's challenge.
    samples = [
        EnrollmentSample(fsdd_wav("george", d, "enroll", i))
        for i, d in enumerate(["471902", "028365", "556174", "903728", "184250"])
    ]
    enroll(store, "res-george", samples, actor="staff:test", check_prompted_digits=False)
    verifier = VoiceVerifier(store)
    challenge = await verifier.start("res-george")
    result = await verifier.verify(
        "res-george", challenge, audio(fsdd_wav("jackson", challenge.state["digits"], "probe", 3))
    )
    assert result.decision is Decision.REJECT, result.to_log()
    assert result.score is not None and result.score < result.threshold  # type: ignore[operator]
    # The same challenge said by george himself matches on the voiceprint.
    own = await verifier.verify(
        "res-george", challenge, audio(fsdd_wav("george", challenge.state["digits"], "probe", 3))
    )
    assert own.score is not None and own.score >= own.threshold  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: silence_wav(3.0), "silent"),
        (lambda: noise_wav(3.0), "no_speech"),
        (lambda: b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10, "corrupt_audio"),
        (lambda: b"", "empty_audio"),
        (lambda: write_wav(np.zeros(0, np.float32), 16000), "empty_audio"),
    ],
    ids=["silence", "noise-only", "corrupt", "zero-bytes", "no-samples"],
)
async def test_unusable_audio_asks_again_with_a_clear_reason(
    verifier: VoiceVerifier, make: Callable[[], bytes], reason: str
) -> None:
    challenge = await verifier.start(RESIDENT)
    result = await verifier.verify(RESIDENT, challenge, audio(make()))
    assert result.decision is Decision.RETRY, result.to_log()
    assert result.reason == reason
    assert not result.passed


async def test_too_long_audio_is_refused(
    verifier: VoiceVerifier, espeak: Callable[..., bytes]
) -> None:
    challenge = await verifier.start(RESIDENT)
    one = espeak(challenge.state["digits"], seed=11, **VOICE)
    from bench.voice_synth import read_wav

    samples, rate = read_wav(one)
    long = write_wav(np.tile(samples, int(35 * rate / len(samples)) + 1), rate)
    result = await verifier.verify(RESIDENT, challenge, audio(long))
    assert result.decision is Decision.RETRY
    assert result.reason == "audio_too_long"


async def test_too_little_speech_is_refused(verifier: VoiceVerifier, voice_data: Path) -> None:
    challenge = await verifier.start(RESIDENT)
    one_digit = (voice_data / "fsdd" / "recordings" / "3_jackson_20.wav").read_bytes()
    result = await verifier.verify(RESIDENT, challenge, audio(one_digit))
    assert result.decision is Decision.RETRY
    assert result.reason == "audio_too_short"


async def test_other_residents_challenge_and_wrong_media(
    verifier: VoiceVerifier, espeak: Callable[..., bytes]
) -> None:
    challenge = await verifier.start("res-other")
    answer = audio(espeak(challenge.state["digits"], seed=12, **VOICE))
    assert (await verifier.verify(RESIDENT, challenge, answer)).reason == "wrong_challenge"
    mine = await verifier.start(RESIDENT)
    image = Evidence(media="image", data=b"\xff\xd8\xff", mime_type="image/jpeg")
    assert (await verifier.verify(RESIDENT, mine, image)).reason == "wrong_media"
    face = dataclasses.replace(mine, kind=VerificationKind.FACE)
    assert (await verifier.verify(RESIDENT, face, answer)).reason == "wrong_challenge"


async def test_not_enrolled_is_rejected(store: TemplateStore, espeak: Callable[..., bytes]) -> None:
    verifier = VoiceVerifier(store)
    challenge = await verifier.start("nobody")
    result = await verifier.verify(
        "nobody", challenge, audio(espeak(challenge.state["digits"], **VOICE))
    )
    assert result.decision is Decision.REJECT
    assert result.reason == "not_enrolled"


@pytest.mark.parametrize(
    ("voice", "speed", "snr_db"),
    [("en-us", 120, 30.0), ("en-us", 150, 30.0), ("en-us", 120, 15.0), ("en-us+f2", 150, 30.0)],
)
def test_challenge_digits_are_heard_across_voices_speeds_and_noise(
    espeak: Callable[..., bytes], voice: str, speed: int, snr_db: float
) -> None:
    # Several synthetic voices, speeds and noise levels through the real recogniser;
    # the recogniser is not perfect, so the bar is 2 of 3 challenges within tolerance.
    tolerance = get_voice_settings().max_digit_errors
    challenges = ["471902", "385026", "916473"]
    passed = [
        check_digits(
            d,
            hear_digits(
                espeak(d, voice=voice, speed=speed, snr_db=snr_db, seed=i), expected_len=6
            ).digits,
            max_errors=tolerance,
        ).passed
        for i, d in enumerate(challenges)
    ]
    assert sum(passed) >= 2, passed


def test_real_voices_digits_are_heard_far_better_than_chance(fsdd_wav: FsddFactory) -> None:
    # Real 8 kHz voices are hard for pocketsphinx (see docs/voice.md); a random
    # 6-digit guess is ~5.4 edits away, the recogniser must do much better.
    errors = []
    for i, (speaker, digits) in enumerate(
        [("george", "502817"), ("jackson", "946031"), ("nicolas", "287465")] * 2
    ):
        heard = hear_digits(fsdd_wav(speaker, digits, "probe", 50 + i), expected_len=6).digits
        errors.append(digit_errors(digits, heard))
    assert np.mean(errors) <= 3.0, errors


async def test_tampered_challenge_state_and_undecryptable_template_are_refused(
    enrolled: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    verifier = VoiceVerifier(enrolled, digit_source=scripted_digits())
    challenge = await verifier.start(RESIDENT)
    answer = audio(espeak(challenge.state["digits"], seed=13, **VOICE))
    blank = dataclasses.replace(challenge, state={**challenge.state, "digits": ""})
    assert (await verifier.verify(RESIDENT, blank, answer)).reason == "wrong_challenge"
    wrong_key = VoiceVerifier(TemplateStore(enrolled.engine, TemplateCipher("another-secret")))
    result = await wrong_key.verify(RESIDENT, challenge, answer)
    assert result.decision is Decision.REJECT
    assert result.reason == "template_unavailable"


async def test_telegram_voice_note_ogg_opus_is_accepted(
    verifier: VoiceVerifier, espeak: Callable[..., bytes]
) -> None:
    from bench.voice_synth import read_wav
    from speech.audio import encode_audio

    challenge = await verifier.start(RESIDENT)
    samples, rate = read_wav(espeak(challenge.state["digits"], seed=14, **VOICE))
    note = encode_audio(samples, "ogg", sample_rate=rate)
    assert note[:4] == b"OggS"
    result = await verifier.verify(
        RESIDENT, challenge, Evidence(media="audio", data=note, mime_type="audio/ogg")
    )
    assert result.decision is Decision.ACCEPT, result.to_log()


async def test_both_digit_checks_decide_and_log_their_method(
    enrolled: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    recognise = get_voice_settings().model_copy(update={"digit_check": "recognise"})
    for settings, method in ((None, "likelihood"), (recognise, "edit_distance")):
        verifier = VoiceVerifier(enrolled, settings=settings, digit_source=scripted_digits())
        challenge = await verifier.start(RESIDENT)
        answer = audio(espeak(challenge.state["digits"], seed=15, **VOICE))
        result = await verifier.verify(RESIDENT, challenge, answer)
        assert result.decision is Decision.ACCEPT, result.to_log()
        assert result.details["digit_check"] == method
        assert (result.details["digit_score"] is None) == (method == "edit_distance")
        other = await verifier.start(RESIDENT)  # the next scripted challenge: other digits
        replay = await verifier.verify(RESIDENT, other, answer)
        assert replay.reason == "wrong_digits", replay.to_log()
