"""The likelihood check of spoken challenges on real and synthetic voices.

Real FSDD speakers (8 kHz, read from the shared folder) and espeak-ng voices
answer fixed challenges; each recording is also checked against challenges it
does not answer. Decoding is deterministic, so the fixed sample always gives
the same scores; the bars below leave a margin under what the sample measures
and above what the previous rule (recognise, then edit distance <= 1, about 40%
of real answers) reaches.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from biometrics.voice.challenge import check_digits, hear_digits
from biometrics.voice.settings import get_voice_settings
from speech.audio import load_audio
from speech.digit_verify import NO_PATH, digit_scorer, score_expected_digits
from speech.recognize import pcm_for
from speech.settings import get_speech_settings

from .conftest import FsddFactory

#: (speaker, challenge, other challenges of random digits the recording does not answer)
REAL = [
    ("george", "502817", "946031"),
    ("george", "318264", "720594"),
    ("george", "790452", "163880"),
    ("george", "064139", "851726"),
    ("jackson", "946031", "287465"),
    ("jackson", "213578", "640912"),
    ("jackson", "857204", "319665"),
    ("jackson", "430968", "572143"),
    ("nicolas", "287465", "502817"),
    ("nicolas", "675190", "428036"),
    ("nicolas", "129843", "906571"),
    ("nicolas", "581026", "374952"),
]


def off_by(digits: str, positions: tuple[int, ...]) -> str:
    """``digits`` with the digits at ``positions`` changed (+5 mod 10)."""
    return "".join(str((int(d) + 5) % 10) if i in positions else d for i, d in enumerate(digits))


@pytest.fixture(scope="module")
def real_scores(fsdd_wav: FsddFactory) -> list[dict[str, float]]:
    """Each real recording scored against its challenge, another one and wrong digits."""
    settings = get_speech_settings()
    out = []
    for i, (speaker, digits, other) in enumerate(REAL):
        pcm, _ = pcm_for(load_audio(fsdd_wav(speaker, digits, "probe", 100 + i)), settings)
        candidates = [digits, other, off_by(digits, (0, 2, 4)), off_by(digits, (1, 4))]
        scores = [s.score for s in digit_scorer().score_all(pcm, candidates)]
        out.append(dict(zip(("genuine", "other", "off3", "off2"), scores, strict=True)))
    return out


def test_real_voices_saying_their_challenge_pass(real_scores: list[dict[str, float]]) -> None:
    threshold = get_voice_settings().min_digit_score
    passed = [s["genuine"] >= threshold for s in real_scores]
    # 12 real answers from 3 speakers; this sample measures 10 (84% in
    # bench/voice_challenge.py). At least 9 must pass; the old rule (recognise,
    # then edit distance <= 1) passes about 45%, ~5 of 12.
    assert sum(passed) >= 9, [round(s["genuine"], 2) for s in real_scores]


def test_a_recording_of_another_challenge_is_rejected(
    real_scores: list[dict[str, float]],
) -> None:
    threshold = get_voice_settings().min_digit_score
    others = [s["other"] for s in real_scores]
    assert all(o < threshold for o in others), others
    # Not a near miss: another challenge scores far below the genuine answers.
    assert max(others) < threshold - 2.0, others


def test_wrong_digits_are_rejected(real_scores: list[dict[str, float]]) -> None:
    threshold = get_voice_settings().min_digit_score
    assert all(s["off3"] < threshold for s in real_scores), real_scores
    # Two digits off is rejected most of the time (10 of 12 here, 87% in the bench).
    assert sum(s["off2"] < threshold for s in real_scores) >= 9, real_scores


@pytest.mark.parametrize(
    ("voice", "speed", "snr_db"),
    [("en-us", 130, None), ("en-us+f2", 160, 15.0), ("en+m7", 185, None), ("en-us", 160, 5.0)],
)
def test_synthetic_voices_still_pass(
    espeak: Callable[..., bytes], voice: str, speed: int, snr_db: float | None
) -> None:
    threshold = get_voice_settings().min_digit_score
    for i, digits in enumerate(["471902", "385026"]):
        wav = espeak(digits, voice=voice, speed=speed, snr_db=snr_db, seed=i)
        heard = hear_digits(load_audio(wav), expected_len=6, expected=digits)
        assert heard.score is not None and heard.score >= threshold, (digits, heard)
        assert len(heard.digits) == 6
        wrong = hear_digits(load_audio(wav), expected_len=6, expected="650179")
        assert wrong.score is not None and wrong.score < threshold, (digits, wrong)


def test_non_digit_speech_is_rejected(voice_data: object) -> None:
    from bench import voice_data as vd
    from bench.voice_synth import write_wav

    threshold = get_voice_settings().min_digit_score
    speaker = vd.libri_speakers()[0]
    wav = write_wav(vd.libri_probes(speaker)[0].wav, vd.SR)
    for digits in ("471902", "385026", "000000"):
        assert score_expected_digits(wav, digits).score < threshold


def test_check_digits_uses_the_score_when_there_is_one() -> None:
    assert check_digits("471902", "071002", max_errors=1, score=-1.0, min_score=-5.0).passed
    check = check_digits("471902", "471902", max_errors=1, score=-6.0, min_score=-5.0)
    assert not check.passed and check.method == "likelihood"
    assert not check_digits("471902", "", max_errors=1, score=0.0, min_score=-5.0).passed
    # Without a threshold (or a score) the edit distance decides, as before.
    legacy = check_digits("471902", "471802", max_errors=1, score=-50.0)
    assert legacy.passed and legacy.method == "edit_distance"


def test_bad_expected_digits_are_refused(fsdd_wav: FsddFactory) -> None:
    wav = fsdd_wav("jackson", "4719", "probe", 1)
    for bad in ("", "47a9", "٤٧١٩"):
        with pytest.raises(ValueError, match="digits"):
            score_expected_digits(wav, bad)
    pcm, _ = pcm_for(load_audio(wav), get_speech_settings())
    with pytest.raises(ValueError, match="one length"):
        digit_scorer().score_all(pcm, ["4719", "47190"])
    assert score_expected_digits(wav, "4719").score >= NO_PATH
