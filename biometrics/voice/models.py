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

from enum import StrEnum


class VoiceModel(StrEnum):
    """A speaker model; its value is what the template store records."""

    GE2E = "ge2e"
    CAMPPLUS = "campplus"


#: Vector size of each model's voiceprints (a stored template must have it).
DIMS = {VoiceModel.GE2E: 256, VoiceModel.CAMPPLUS: 192}

#: The model of a voice template stored before models were recorded.
UNRECORDED = VoiceModel.GE2E


def recorded_model(tag: str | None) -> VoiceModel:
    """The model a stored template's tag names (``None``: :data:`UNRECORDED`).

    Raises:
        ValueError: The tag names no model billtalk knows.
    """
    return UNRECORDED if tag is None else VoiceModel(tag)
