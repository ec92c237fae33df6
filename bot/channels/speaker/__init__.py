"""The smart-speaker channel: three ways onto the same dialogue engine.

* :mod:`bot.channels.speaker.wyoming_server`: a Wyoming server for Home Assistant
  Assist (``asr``, ``handle`` and ``tts`` programs), ``billtalk speaker serve``;
* :mod:`bot.channels.speaker.alexa`: an Alexa-style custom skill endpoint,
  ``POST /speaker/alexa``, with Amazon's request verification
  (:mod:`bot.channels.speaker.alexa_verify`);
* :mod:`bot.channels.speaker.http`: plain HTTP audio for any device,
  ``POST /api/v1/speaker/ask``.

All three go through :class:`bot.channels.speaker.channel.SpeakerChannel`, which
pairs devices to households (:mod:`bot.channels.speaker.devices`), re-asks on
weak transcripts and speaks the engine's spoken rendering. See docs/speaker.md.

This package's ``__init__`` imports nothing heavy: the dialogue's payment form
imports :mod:`bot.channels.speaker.payment_rule` from it.
"""
