"""speech.audio: every input format decodes; every kind of bad audio gets a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from speech.audio import SAMPLE_RATE, AudioError, encode_audio, load_audio
from tests.speech.conftest import pink_noise, wav_bytes


@pytest.fixture(scope="module")
def speech(say) -> np.ndarray:  # type: ignore[no-untyped-def]
    return say("please pay my water bill")


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_every_format_decodes_to_16k_mono(speech: np.ndarray, fmt: str) -> None:
    data = encode_audio(speech, fmt)
    audio = load_audio(data)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    expected = speech.size / SAMPLE_RATE
    # Codecs pad a little (MP3, Opus pre-skip); the duration must stay close.
    assert abs(audio.duration_s - expected) < 0.1
    assert audio.speech_s > 0.8
    assert audio.format in {"wav", "flac", "ogg", "mp3"}


def test_opus_voice_note_keeps_the_speech(speech: np.ndarray) -> None:
    ogg = encode_audio(speech, "ogg")
    decoded = load_audio(ogg, trim=False).samples
    n = min(decoded.size, speech.size)
    # Opus is lossy but the envelope must match: high correlation of frame energies.
    frames = n // 320
    a = np.square(speech[: frames * 320].reshape(frames, 320)).mean(axis=1)
    shift = decoded.size - speech.size
    b_src = decoded[max(shift, 0) :][: frames * 320]
    b = np.square(b_src.reshape(frames, 320)).mean(axis=1)
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_telephone_band_8k_is_resampled(fsdd) -> None:  # type: ignore[no-untyped-def]
    audio = load_audio(fsdd / "7_jackson_3.wav")
    assert audio.source_rate == 8000
    assert audio.sample_rate == SAMPLE_RATE
    assert 0.2 < audio.duration_s < 1.5


def test_trim_removes_leading_and_trailing_silence(speech: np.ndarray) -> None:
    padded = np.concatenate([np.zeros(SAMPLE_RATE * 2), speech, np.zeros(SAMPLE_RATE * 2)])
    audio = load_audio(wav_bytes(padded.astype(np.float32)))
    assert audio.duration_s == pytest.approx(padded.size / SAMPLE_RATE, abs=0.01)
    assert audio.samples.size < speech.size + SAMPLE_RATE  # ~4 s of silence gone
    untrimmed = load_audio(wav_bytes(padded.astype(np.float32)), trim=False)
    assert untrimmed.samples.size == padded.size


def test_unpacks_as_samples_and_duration(speech: np.ndarray) -> None:
    samples, duration = load_audio(wav_bytes(speech))
    assert samples.size > 0 and duration > 1.0


def _code(data: bytes, **kw: float) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(data, **kw)
    assert info.value.message and info.value.to_dict()["code"] == info.value.code
    return info.value.code


def test_empty_bytes() -> None:
    assert _code(b"") == "empty"


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AudioError) as info:
        load_audio(tmp_path / "nope.ogg")
    assert info.value.code == "not_found"


def test_header_only_wav_is_empty() -> None:
    assert _code(wav_bytes(np.zeros(0, np.float32))) in {"empty", "corrupt"}


def test_digital_silence() -> None:
    assert _code(wav_bytes(np.zeros(SAMPLE_RATE * 2, np.float32))) == "silent"


@pytest.mark.parametrize("kind", ["white", "pink", "hum"])
def test_noise_only_is_not_speech(kind: str) -> None:
    n = SAMPLE_RATE * 3
    if kind == "white":
        noise = np.random.default_rng(1).normal(0, 0.1, n)
    elif kind == "pink":
        noise = pink_noise(n, seed=2) * 0.1
    else:
        noise = 0.2 * np.sin(2 * np.pi * 50 * np.arange(n) / SAMPLE_RATE)
    assert _code(wav_bytes(noise.astype(np.float32))) == "no_speech"


def test_noisy_speech_is_still_speech(speech: np.ndarray) -> None:
    from tests.speech.conftest import add_noise

    assert load_audio(wav_bytes(add_noise(speech, 5.0))).speech_s > 0.5


def test_random_bytes_are_corrupt() -> None:
    garbage = np.random.default_rng(3).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    assert _code(garbage) in {"corrupt", "unsupported_format"}


def test_text_file_is_corrupt() -> None:
    assert _code(b"this is not audio at all, just a text message" * 20) in {
        "corrupt",
        "unsupported_format",
    }


def test_truncated_wav(speech: np.ndarray) -> None:
    data = wav_bytes(speech)
    assert _code(data[: len(data) // 2]) == "truncated"


@pytest.mark.parametrize("fmt", ["ogg", "flac"])
def test_truncated_compressed(speech: np.ndarray, fmt: str) -> None:
    data = encode_audio(speech, fmt)
    assert _code(data[: len(data) // 2]) in {"truncated", "corrupt"}


def test_too_long(speech: np.ndarray) -> None:
    long = np.tile(speech, 20)  # ~30+ s
    assert long.size / SAMPLE_RATE > 31
    assert _code(wav_bytes(long)) == "too_long"
    # A lower limit applies to shorter audio too.
    assert _code(wav_bytes(speech), max_seconds=0.5) == "too_long"


def test_image_is_unsupported_format() -> None:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    assert _code(buf.getvalue()) in {"unsupported_format", "corrupt"}


def test_raw_pcm_gets_the_same_checks_and_trim_as_a_wav(speech: np.ndarray) -> None:
    from speech.audio import audio_from_pcm16, to_pcm16

    padded = np.concatenate([np.zeros(16_000, np.float32), speech, np.zeros(16_000, np.float32)])
    pcm = to_pcm16(padded)
    direct = audio_from_pcm16(pcm)
    via_wav = load_audio(wav_bytes(padded))
    assert direct.samples.size == via_wav.samples.size < padded.size  # silence trimmed
    assert np.allclose(direct.samples, via_wav.samples, atol=1e-4)
    assert direct.duration_s == via_wav.duration_s and direct.speech_s == via_wav.speech_s
    with pytest.raises(AudioError) as silent:
        audio_from_pcm16(bytes(32_000))
    assert silent.value.code == "silent"
    with pytest.raises(AudioError) as noise:
        audio_from_pcm16(to_pcm16(pink_noise(32_000) * 0.3))
    assert noise.value.code == "no_speech"
    with pytest.raises(AudioError) as long:
        audio_from_pcm16(pcm, max_seconds=1.0)
    assert long.value.code == "too_long"
    with pytest.raises(AudioError) as odd:
        audio_from_pcm16(pcm[:-1])
    assert odd.value.code == "corrupt"
