"""CAM++ as the voiceprint: hash-checked loading, versioned templates, real voices.

Real voices are the shared FSDD and LibriSpeech speakers (``../shared/data/voice``);
the synthetic resident (espeak-ng) is only there to answer digit challenges.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from bench import voice_data as vd
from billtalk.db import make_engine, upgrade
from biometrics.crypto import TemplateCipher
from biometrics.store import MIGRATIONS, VERSION_TABLE, TemplateStore, _pack, ensure_schema
from biometrics.voice import campplus
from biometrics.voice.enrollment import KIND, EnrollmentSample, enroll
from biometrics.voice.models import PROFILES, VoiceModel
from biometrics.voice.settings import VoiceSettings, get_voice_settings
from biometrics.voice.verifier import VoiceVerifier
from biometrics.voice.voiceprint import pooled_template, score, voiceprint_of_samples
from verification import Decision, Evidence

VOICE = {"voice": "en-us", "speed": 120, "snr_db": 30.0}
PROMPTS = ["471902", "028365", "556174", "903728", "184250"]
SECRET = "voice-campplus-secret"


# --- the model files -----------------------------------------------------------------------


def test_campplus_features_are_kaldi_mel_filterbanks() -> None:
    """fbank: 25/10-ms frames, mean-normalised, a 1-kHz tone in the mel bin around 1 kHz."""
    sr = 16_000
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    wav = 1e-3 * rng.normal(size=sr)
    wav[sr // 2 :] += 0.5 * np.sin(2 * np.pi * 1000 * t[sr // 2 :])
    feat = campplus.fbank(wav.astype(np.float32))
    assert feat.shape == (1 + (sr - 400) // 160, 80)
    np.testing.assert_allclose(feat.mean(0), 0, atol=1e-4)  # mean-normalised
    mel = 1127 * np.log(1 + np.array([20.0, 8000.0, 1000.0]) / 700)
    expected = (mel[2] - mel[0]) / ((mel[1] - mel[0]) / 81) - 1  # centre index of 1 kHz
    tone_bins = feat[len(feat) // 2 + 5 :].argmax(1)
    assert np.all(np.abs(tone_bins - expected) <= 1), (set(tone_bins.tolist()), expected)


def test_the_installed_files_are_the_pinned_ones_and_load() -> None:
    model = campplus.load_encoder()
    assert not model.training
    vec = campplus.embed(np.random.default_rng(1).normal(0, 0.1, 32_000).astype(np.float32))
    assert vec.shape == (campplus.EMBEDDING_DIM,) == (PROFILES[VoiceModel.CAMPPLUS].dims,)
    assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5


def test_a_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    good = campplus.installed_file(campplus.CHECKPOINT)
    copy = tmp_path / "campplus.pt"
    shutil.copyfile(good, copy)
    campplus.load_encoder(checkpoint=copy)  # an intact copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    copy.write_bytes(bytes(data))
    with pytest.raises(campplus.CampplusIntegrityError, match="sha256"):
        campplus.load_encoder(checkpoint=copy)


def test_tampered_model_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    code = tmp_path / "camplusplus.py"
    marker = tmp_path / "ran"
    code.write_text(
        campplus.installed_file(campplus.MODEL_CODE).read_text()
        + f"\nopen({str(marker)!r}, 'w').close()\n"
    )
    with pytest.raises(campplus.CampplusIntegrityError, match="sha256"):
        campplus.load_encoder(code=code)
    assert not marker.exists()


def test_a_missing_distribution_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campplus, "DISTRIBUTION", "no-such-distribution-billtalk")
    with pytest.raises(campplus.CampplusIntegrityError, match="make setup"):
        campplus.installed_file(campplus.CHECKPOINT)


# --- real voices ---------------------------------------------------------------------------


def _speakers() -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """(enrollment, probes) of every shared real speaker: 3 FSDD, 5 LibriSpeech."""
    rng = random.Random(18)
    out = {}
    for spk in vd.FSDD_SPEAKERS:
        enroll_utts = vd.fsdd_enrollment(spk, rng, length=6)
        probes = vd.fsdd_probes(spk, rng, 8)
        out[f"fsdd:{spk}"] = ([u.wav for u in enroll_utts], [u.wav for u in probes])
    for spk in vd.libri_speakers():
        out[f"libri:{spk}"] = (
            [u.wav for u in vd.libri_enrollment(spk, rng)],
            [u.wav for u in vd.libri_probes(spk)][:8],
        )
    return out


def test_campplus_tells_real_speakers_apart_at_the_shipped_threshold() -> None:
    """Every shared real speaker against every other: genuine pass, impostors do not."""
    threshold = get_voice_settings().match_threshold
    min_voiced = get_voice_settings().min_voiced_s
    templates, probes = {}, {}
    for spk, (enroll_wavs, probe_wavs) in _speakers().items():
        prints = [voiceprint_of_samples(w, min_voiced_s=0.25) for w in enroll_wavs]
        assert {p.model for p in prints} == {VoiceModel.CAMPPLUS}
        templates[spk] = pooled_template(prints)
        probes[spk] = [voiceprint_of_samples(w, min_voiced_s=min_voiced) for w in probe_wavs]
    genuine = [score(templates[s], p) for s in templates for p in probes[s]]
    impostor = [
        score(templates[s], p) for s in templates for o in probes if o != s for p in probes[o]
    ]
    n_probes = sum(len(p) for p in probes.values())
    assert len(templates) == 8 and len(genuine) == n_probes >= 50
    assert len(impostor) == 7 * n_probes
    frr = float(np.mean(np.array(genuine) < threshold))
    assert frr <= 0.05, (frr, sorted(genuine)[:5])
    assert max(impostor) < threshold, max(impostor)
    assert np.mean(genuine) - np.mean(impostor) > 0.4


# --- versioned templates ----------------------------------------------------------------------


@pytest.fixture
def espeak_samples(espeak: Callable[..., bytes]) -> list[EnrollmentSample]:
    return [EnrollmentSample(espeak(p, seed=i, **VOICE), p) for i, p in enumerate(PROMPTS)]


def _verifier(store: TemplateStore, digits: str, **settings: object) -> VoiceVerifier:
    return VoiceVerifier(
        store,
        settings=VoiceSettings(**settings),
        digit_source=lambda n: digits,  # type: ignore[arg-type]
    )


async def _answer(verifier: VoiceVerifier, resident: str, recording: bytes):  # type: ignore[no-untyped-def]
    challenge = await verifier.start(resident)
    return await verifier.verify(resident, challenge, Evidence("audio", recording, "audio/wav"))


def test_a_new_enrollment_makes_a_campplus_template(
    store: TemplateStore, espeak_samples: list[EnrollmentSample]
) -> None:
    report = enroll(store, "r-new", espeak_samples, actor="resident:r-new")
    assert report.model is VoiceModel.CAMPPLUS
    stored = store.load_stored("r-new", KIND)
    assert stored is not None and stored.model == "campplus"
    assert stored.vectors.shape == (1, 192)
    assert "model" in repr(stored) and "vectors" not in repr(stored)
    assert '"model": "campplus"' in store.audit_trail("r-new")[0]["detail"]


async def test_a_ge2e_template_from_before_keeps_verifying_with_ge2e(
    tmp_path: Path, espeak: Callable[..., bytes], espeak_samples: list[EnrollmentSample]
) -> None:
    """A template stored before models were recorded: migrated as GE2E, scored by GE2E at
    its own threshold (not by CAM++), and a re-enrollment makes it CAM++."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(MIGRATIONS, url, VERSION_TABLE, "0001")  # the schema before issue 18
    cipher = TemplateCipher(SECRET)
    ge2e = VoiceSettings(enroll_model=VoiceModel.GE2E)
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    ensure_schema(scratch)
    enroll(TemplateStore(make_engine(scratch), cipher), "r-old", espeak_samples,
           actor="resident:r-old", settings=ge2e)  # fmt: skip
    old_vectors = TemplateStore(make_engine(scratch), cipher).load("r-old", KIND)
    assert old_vectors is not None and old_vectors.shape == (1, 256)
    sealed = cipher.seal(_pack(old_vectors), resident_id="r-old", kind=KIND)
    with make_engine(url).begin() as conn:  # the row as the old code wrote it
        conn.execute(
            text(
                "INSERT INTO biometric_templates (resident_id, kind, key_id, nonce, ciphertext,"
                " samples, created_at, updated_at) VALUES ('r-old', 'voice', :k, :n, :c, 1,"
                " '2026-11-30 10:00:00', '2026-11-30 10:00:00')"
            ),
            {"k": sealed.key_id, "n": sealed.nonce, "c": sealed.ciphertext},
        )
    ensure_schema(url)  # the migration records the model of existing voice rows
    store = TemplateStore(make_engine(url), cipher)
    stored = store.load_stored("r-old", KIND)
    assert stored is not None and stored.model == "ge2e"

    recording = espeak("385026", seed=9, **VOICE)
    result = await _answer(_verifier(store, "385026", learn_from_success=False), "r-old", recording)
    assert result.decision is Decision.ACCEPT, result
    assert result.details["voice_model"] == "ge2e"
    assert result.threshold == VoiceSettings().ge2e_match_threshold
    # A GE2E template scored by a CAM++ probe would be refused as a size mismatch, not
    # accepted: the score is the GE2E one.
    expected = score(old_vectors, voiceprint_of_samples(
        _samples(recording), min_voiced_s=0.5, model=VoiceModel.GE2E))  # fmt: skip
    assert result.score == pytest.approx(expected, abs=1e-3)

    # Re-enrollment replaces it with a CAM++ template, verified at the CAM++ threshold.
    enroll(store, "r-old", espeak_samples, actor="resident:r-old")
    stored = store.load_stored("r-old", KIND)
    assert stored is not None and stored.model == "campplus" and stored.vectors.shape == (1, 192)
    again = await _answer(_verifier(store, "385026", learn_from_success=False), "r-old", recording)
    assert again.decision is Decision.ACCEPT and again.details["voice_model"] == "campplus"
    assert again.threshold == VoiceSettings().match_threshold


def _samples(wav_bytes: bytes) -> np.ndarray:
    from biometrics.voice.audio import decode

    return decode(wav_bytes).samples


async def test_a_template_whose_recorded_model_does_not_fit_is_refused(
    store: TemplateStore, espeak: Callable[..., bytes], espeak_samples: list[EnrollmentSample]
) -> None:
    enroll(store, "r-x", espeak_samples, actor="resident:r-x")
    with store.engine.begin() as conn:  # a CAM++ template mislabelled as GE2E
        conn.execute(text("UPDATE biometric_templates SET model = 'ge2e'"))
    result = await _answer(_verifier(store, "385026"), "r-x", espeak("385026", seed=9, **VOICE))
    assert result.decision is Decision.REJECT and result.reason == "template_unavailable"
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE biometric_templates SET model = 'x-vector-9000'"))
    result = await _answer(_verifier(store, "385026"), "r-x", espeak("385026", seed=9, **VOICE))
    assert result.decision is Decision.REJECT and result.reason == "template_unavailable"


async def test_a_refresh_keeps_the_template_model(
    store: TemplateStore, espeak: Callable[..., bytes], espeak_samples: list[EnrollmentSample]
) -> None:
    enroll(store, "r-r", espeak_samples, actor="resident:r-r")
    result = await _answer(_verifier(store, "385026"), "r-r", espeak("385026", seed=9, **VOICE))
    assert result.decision is Decision.ACCEPT
    assert result.details["voiceprint_refreshed"] is True
    for kind in (KIND, f"{KIND}:previous"):
        stored = store.load_stored("r-r", kind)
        assert stored is not None and stored.model == "campplus", kind
    assert store.restore_previous("r-r", KIND, actor="staff:ana")
    restored = store.load_stored("r-r", KIND)
    assert restored is not None and restored.model == "campplus"
