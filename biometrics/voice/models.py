"""The speaker models a voice template can belong to, as recorded beside each template.

A voiceprint is only comparable with a template made by the same model. Every voice
template is stored with the name of its model (``biometric_templates.model``), and
the verifier scores a probe with that model and that model's thresholds:

* ``campplus`` - CAM++ (:mod:`biometrics.voice.campplus`), 192-d: every enrollment
  since issue 18 (``BILLTALK_VOICE_ENROLL_MODEL``, default);
* ``ge2e`` - Resemblyzer's GE2E (:mod:`biometrics.voice.embedding`), 256-d: the
  templates enrolled before. They keep verifying with GE2E and its threshold until
  the resident re-enrolls (the enrollment audio is not kept, so they cannot be
  converted). Rows stored before the model was recorded are GE2E
  (:data:`UNRECORDED`), the only model there was; the schema migration writes
  that down for existing rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from biometrics.refresh import RefreshPolicy


class VoiceModel(StrEnum):
    """A speaker model; its value is what the template store records."""

    GE2E = "ge2e"
    CAMPPLUS = "campplus"


@dataclass(frozen=True)
class ModelProfile:
    """Everything about voice verification that depends on the template's speaker model.

    Attributes:
        dims: Vector size of the model's voiceprints (a stored template must have it).
        threshold_setting: The :class:`~biometrics.voice.settings.VoiceSettings` field
            (``BILLTALK_VOICE_<NAME>``) holding the match threshold of this model's
            templates; its default is ``match_threshold``.
        match_threshold: The shipped match threshold (cosine similarity of probe and
            template at or above which the voice matches).
        enroll_consistency: Least similarity of each enrollment voiceprint to the mean
            of the others.
        refresh: Bounds of learning from success (the margin in this model's cosine
            units).
    """

    dims: int
    threshold_setting: str
    match_threshold: float
    enroll_consistency: float
    refresh: RefreshPolicy


#: The per-model table: the one place a model's size, thresholds and bounds are set.
#:
#: CAM++ (every enrollment since issue 18; bench/voice_speakers.py, 266 real speakers,
#: split by speaker, seed 18, every value chosen on the 133-speaker calibration group only
#: and reported on the other 133 in docs/voice.md and bench/RESULTS.md):
#:
#: * match 0.706: the FAR 0.1 % rule (the empirical 0.1 % quantile of the calibration
#:   group's impostor trials), rounded up to 3 decimals;
#: * enrollment consistency 0.65: the highest 0.01 step that refuses at most 1 % of the
#:   calibration group's genuine enrollments;
#: * refresh margin 0.15: every calibration impostor trial (~557k) stays below
#:   threshold + margin.
#:
#: GE2E (templates enrolled before CAM++; they keep verifying with GE2E until the resident
#: re-enrolls):
#:
#: * match 0.854: the FAR 0.1 % rule on all 266 real speakers of bench/voice_speakers.py
#:   (FSDD 6, LibriSpeech 10, speechocean762 250): 0.8531, rounded up to 3 decimals.
#:   Two-fold by speaker, the same rule chose 0.851 / 0.854 and held FAR to 0.101 %
#:   (0.095-0.107 %) on the other half, at FRR 27 % (adults: 15-19 %). It was 0.806,
#:   chosen on 8 of the first 16 speakers, which lets 1.09 % of 1.9 million impostor
#:   trials of 250 unseen speakers through (docs/voice.md);
#: * enrollment consistency 0.6: same-speaker pairs score about 0.75-0.95 and different
#:   speakers about 0.4-0.75 on the shared data, so 0.6 only catches a clearly different
#:   voice;
#: * refresh margin 0.08.
PROFILES: dict[VoiceModel, ModelProfile] = {
    VoiceModel.CAMPPLUS: ModelProfile(
        dims=192,
        threshold_setting="match_threshold",
        match_threshold=0.706,
        enroll_consistency=0.65,
        refresh=RefreshPolicy(margin=0.15),
    ),
    VoiceModel.GE2E: ModelProfile(
        dims=256,
        threshold_setting="ge2e_match_threshold",
        match_threshold=0.854,
        enroll_consistency=0.6,
        refresh=RefreshPolicy(margin=0.08),
    ),
}

#: The model of a voice template stored before models were recorded.
UNRECORDED = VoiceModel.GE2E


def recorded_model(tag: str | None) -> VoiceModel:
    """The model a stored template's tag names (``None``: :data:`UNRECORDED`).

    Raises:
        ValueError: The tag names no model billtalk knows.
    """
    return UNRECORDED if tag is None else VoiceModel(tag)
