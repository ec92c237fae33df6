"""Voice verification with spoken challenge digits.

Public API (import from the submodules; this package stays light to import):

* :class:`biometrics.voice.verifier.VoiceVerifier` - the ``voice`` kind of
  :class:`verification.Verifier`: ``start`` issues a random 6-digit challenge
  (60 s), ``verify`` checks the spoken digits and the voiceprint;
  ``VoiceVerifier.from_settings()`` builds one on the configured database.
* :func:`biometrics.voice.enrollment.enrollment_prompts` and
  :func:`biometrics.voice.enrollment.enroll` (with
  :class:`~biometrics.voice.enrollment.EnrollmentSample`) - five prompted digit
  strings become an encrypted template; refusals raise
  :class:`~biometrics.voice.enrollment.EnrollmentError` with a ``code``.
* :func:`biometrics.voice.voiceprint.voiceprint_of` and
  :func:`biometrics.voice.voiceprint.score` - a voiceprint of a recording and its
  similarity to a template (what ``billtalk voice verify`` uses).
* :class:`biometrics.voice.models.VoiceModel` - the speaker model recorded with
  each template: CAM++ (:mod:`biometrics.voice.campplus`, every enrollment since
  issue 18) or GE2E (:mod:`biometrics.voice.embedding`, templates enrolled before).
* :func:`biometrics.voice.settings.get_voice_settings` - the shipped thresholds
  (one per model) and tolerances (``BILLTALK_VOICE_*``).

Design, calibration and policy: ``docs/voice.md``.
"""
