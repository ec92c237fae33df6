"""The per-model table of biometrics.voice.models: one place, the same values as before."""

from __future__ import annotations

import pytest

from biometrics.voice import campplus
from biometrics.voice.models import PROFILES, UNRECORDED, VoiceModel, recorded_model
from biometrics.voice.settings import VoiceSettings


def test_every_model_has_a_profile() -> None:
    assert set(PROFILES) == set(VoiceModel)


def test_the_shipped_values_are_unchanged() -> None:
    cam, ge2e = PROFILES[VoiceModel.CAMPPLUS], PROFILES[VoiceModel.GE2E]
    assert (cam.dims, cam.match_threshold, cam.enroll_consistency) == (192, 0.706, 0.65)
    assert (ge2e.dims, ge2e.match_threshold, ge2e.enroll_consistency) == (256, 0.854, 0.6)
    assert (cam.refresh.margin, ge2e.refresh.margin) == (0.15, 0.08)
    assert cam.dims == campplus.EMBEDDING_DIM


@pytest.mark.parametrize("model", list(VoiceModel))
def test_each_threshold_setting_defaults_to_the_profile(model: VoiceModel) -> None:
    profile = PROFILES[model]
    assert profile.threshold_setting in VoiceSettings.model_fields
    assert VoiceSettings().threshold(model) == profile.match_threshold


def test_a_threshold_setting_overrides_only_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLTALK_VOICE_GE2E_MATCH_THRESHOLD", "0.9")
    settings = VoiceSettings()
    assert settings.threshold(VoiceModel.GE2E) == 0.9
    assert settings.threshold(VoiceModel.CAMPPLUS) == PROFILES[VoiceModel.CAMPPLUS].match_threshold


def test_unrecorded_templates_are_ge2e() -> None:
    assert recorded_model(None) is UNRECORDED is VoiceModel.GE2E
    assert recorded_model("campplus") is VoiceModel.CAMPPLUS
    with pytest.raises(ValueError):
        recorded_model("xvector")
