"""Settings of the smart-speaker channel (``BILLTALK_SPEAKER_*`` environment variables)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: How CTranslate2 computes Whisper's weights: ``int8`` (quantised, the default: the
#: smallest and fastest on the CPU), ``int8_float32`` or ``float32`` (as shipped, slower).
ComputeType = Literal["int8", "int8_float32", "float32"]


class SpeakerSettings(BaseSettings):
    """Knobs of :mod:`bot.channels.speaker`.

    Every value can be set from the environment with the ``BILLTALK_SPEAKER_``
    prefix, e.g. ``BILLTALK_SPEAKER_MAX_AUDIO_S=30``.
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_SPEAKER_", env_file=".env", extra="ignore", frozen=True
    )

    #: The speaker's recogniser: ``pocketsphinx`` (``speech/``, English only),
    #: ``faster_whisper`` (Whisper base, int8, see
    #: :mod:`bot.channels.speaker.whisper_asr`), or ``auto`` (the default): each
    #: request to the engine measured best for it (bench/speaker_engines.py) --
    #: English to pocketsphinx (and to Whisper when pocketsphinx is unsure, see
    #: ``whisper_second_opinion``), Chinese to Whisper when it is installed.
    asr_engine: Literal["auto", "pocketsphinx", "faster_whisper"] = "auto"
    #: With pocketsphinx, also try the general en-US model on unsure decodes (about
    #: 1 s more each). Off on the speaker: an unsure transcript is said back and
    #: asked again anyway, and the spoken turn must stay short.
    general_fallback: bool = False
    #: Folder of the Whisper model (empty: ``BILLTALK_DATA_DIR/whisper-base``).
    whisper_model_dir: str = ""
    #: CPU threads for Whisper.
    whisper_threads: int = Field(default=2, ge=1)
    #: How CTranslate2 computes Whisper's weights (:data:`ComputeType`).
    whisper_compute_type: ComputeType = "int8"
    #: Whisper's beam width (1: greedy; 5 measured better on the short window,
    #: bench/RESULTS.md "Smart speaker").
    whisper_beam_size: int = Field(default=5, ge=1, le=10)
    #: Give Whisper the one-sentence bill-domain prompt.
    whisper_prompt: bool = True
    #: Encode only the utterance (plus 2 s of silence) instead of Whisper's padded
    #: 30 s window: about three times faster; with the decoder held against
    #: repeating itself (:mod:`bot.channels.speaker.whisper_asr`) as accurate on the
    #: development requests.
    whisper_short_window: bool = True
    #: English: a word in Whisper's text that the bill-domain language model
    #: (pocketsphinx's, from the NLU training data) has never seen is replaced by
    #: the domain word that sounds closest, when that makes the sentence far likelier
    #: (:mod:`speech.lm_score`). On the development requests (2026-12-07 13:41) it
    #: changed 58 of 736 transcripts, WER 15.8 / 21.5 -> 15.9 / 20.9 % (clean / 15 dB),
    #: agreement 89.9 / 88.3 -> 90.2 / 88.6 %: a small gain, and it also "corrects"
    #: right words the domain LM lacks ("how big" -> "how bill"). Off: clean WER went
    #: the wrong way, every change is inside the intervals, and a corrector that
    #: rewrites right words needs a measured gain before it ships.
    whisper_lexicon: bool = False
    #: Under ``auto``: an English request pocketsphinx decodes weakly (which would be
    #: said back and asked again) is decoded by Whisper too, and Whisper's text is
    #: used when Whisper is sure of it. Spoken digit strings stay with
    #: pocketsphinx's digit grammar.
    whisper_second_opinion: bool = True
    #: Under ``auto``: every English transcript that is not a digit string is chosen
    #: from pocketsphinx's and Whisper's ``whisper_hypotheses`` best, each scored by
    #: Whisper (forced decoding) plus ``rescore_lm_weight`` x the bill-domain language
    #: model (``rescore_state_lm``) plus ``rescore_word_bonus`` per word (N-best rescoring,
    #: :func:`bot.channels.speaker.whisper_asr.candidates`); after a PIN or link-code
    #: prompt a candidate with 6 digits wins over those without
    #: (:func:`~bot.channels.speaker.whisper_asr.fits`). Whisper then decodes every
    #: English request, not only the ones pocketsphinx is unsure of. On by default with
    #: every transcript rescored (bench/RESULTS.md, "Smart speaker", 2026-12-07
    #: 18:43-20:15: WER 15.7 / 21.3 -> 14.8 / 15.8 %, agreement 90.2 / 88.0 -> 92.4 /
    #: 92.7 %, clean / 15 dB, development set).
    whisper_rescore: bool = True
    #: Rescore only the transcripts pocketsphinx is unsure of (those ``auto`` sends to
    #: Whisper anyway); a sure pocketsphinx decode is kept as it is. Cheaper, but measured
    #: worse than rescoring everything (development set, 2026-12-07 20:00).
    rescore_only_unsure: bool = False
    #: Whisper's hypotheses kept for ``whisper_rescore`` (its beam is at least this wide).
    whisper_hypotheses: int = Field(default=5, ge=1, le=10)
    #: Weight of the language model's natural-log probability in the rescoring. 0.4 with
    #: the state LM and a word bonus of 2 since 2026-12-07 22:00 (0.8 and 1.0 before,
    #: which made the LM drop the last words of an answer: "yes do it now" -> "yes do
    #: it", "no leave it" -> "leave it"); chosen on the development set by the rule of
    #: ``bench/speaker_engines.py --grid`` (bench/RESULTS.md, "Smart speaker", 2026-12-07
    #: 21:40-22:47). On the test set the expected answers gained and idle requests at 15 dB
    #: lost (WER 13.3 / 16.9 -> 12.7 / 18.3 % with the closed-answer rules): 0.8 / 1.0 keeps
    #: those rules with the old weights.
    rescore_lm_weight: float = Field(default=0.4, ge=0.0)
    #: Bonus per word in the rescoring (nats; Whisper's score and the LM favour short
    #: transcripts).
    rescore_word_bonus: float = Field(default=2.0, ge=0.0)
    #: The LM weight for a free request (the idle state: no answer expected), where
    #: ``rescore_lm_weight`` is for the answers the dialogue expects. 0.8 since 2026-12-08
    #: (0.4 before, as the answers): the larger word bonus of the closed answers let noise
    #: words into idle requests at 15 dB. Chosen on the development set by a rule fixed
    #: before the run (the lowest mean WER among the points of ``bench/speaker_engines.py
    #: --grid``'s grid with agreement not lower; bench/RESULTS.md, "Smart speaker",
    #: 2026-12-08): WER 11.4 / 15.7 -> 11.2 / 14.3 %, clean / 15 dB; not confirmed on the
    #: test set (12.7 / 18.3 -> 12.8 / 17.5 %, agreement 92.0 / 87.3 -> 91.7 / 86.6 %).
    rescore_idle_lm_weight: float = Field(default=0.8, ge=0.0)
    #: An answer the dialogue expects (:mod:`speech.expectation`) is rescored with that
    #: state's language model (the one pocketsphinx decodes it with: the domain LM's
    #: sentences plus the state's answers) instead of the domain LM.
    rescore_state_lm: bool = True
    #: Run Whisper's beam search for the rescoring (:func:`~bot.channels.speaker.whisper_asr.nbest`)
    #: in a worker thread while pocketsphinx decodes the same audio, instead of after it:
    #: the same candidates and transcript (the beam is not needed for a PIN or link code
    #: said after its prompt, where it is not started early). Off by default: on the shared
    #: 2-vCPU machine at load 5-11 it measured no faster (interleaved, 2026-12-08 01:04-01:42:
    #: one recognise A/B 1.66 -> 1.44 s median, the next 1.18 -> 1.24 s, whole turns 1.26 ->
    #: 1.34 s); with both cores busy there is no idle core to run it on. A quiet machine
    #: has not been measured.
    rescore_in_parallel: bool = False
    #: Decode an answer with what the dialogue expects after its question (a PIN, a
    #: yes/no confirmation, a link code on an unpaired speaker): pocketsphinx's state
    #: language model and carrier-phrase digit grammar, Whisper's state prompt
    #: (:mod:`speech.expectation`); a weak decode falls back to free recognition.
    expectations: bool = True
    #: Under ``auto`` with expectations: digits said after a PIN or link-code prompt are
    #: read by Whisper (with the state's prompt) first, pocketsphinx's digit grammar when
    #: Whisper is unsure or hears no 4-8 digits. On the development run real voices' PINs
    #: (FSDD) were exactly right 75 % instead of 50 % with the grammar first, espeak's 60 %
    #: instead of 75 % (bench/RESULTS.md, "Smart speaker", 2026-12-07 10:12-10:25).
    whisper_reads_digits: bool = True
    #: Longest utterance accepted; a longer stream is cut here and answered
    #: with "that was too long" (the rest of the stream is read and dropped).
    max_audio_s: float = Field(default=60.0, gt=0)
    #: Wrong link codes a device may say before pairing is locked for it.
    pairing_max_failures: int = Field(default=5, ge=1)
    #: How long pairing stays locked after too many wrong codes.
    pairing_lock_minutes: int = Field(default=15, ge=1)
    #: Wrong link codes from all speakers together (one server process) within a
    #: lock period before pairing locks for every unpaired speaker: a client that
    #: invents a new device id for each guess is stopped too.
    pairing_max_failures_global: int = Field(default=20, ge=1)
    #: Weak (unsure) transcripts in a row before the speaker suggests the chat.
    max_weak_transcripts: int = Field(default=2, ge=1)
    #: espeak-ng voices for replies, by language.
    voice_en: str = "en-us"
    voice_zh: str = "cmn"
    #: Speaking rate of replies, words per minute.
    speed_wpm: int = Field(default=160, ge=80, le=400)
    #: Audio chunk size sent to Wyoming clients, in samples.
    samples_per_chunk: int = Field(default=1024, ge=64)
    #: The Alexa skill's application id; requests for another skill are refused
    #: (empty: any skill id, for development only).
    alexa_skill_id: str = ""
    #: PEM bundle of root certificates the Alexa signing chain must lead to
    #: (empty: the ``certifi`` bundle).
    alexa_trust_store: str = ""
    #: Local copies of signing-certificate chains, as JSON ``{"url": "path"}``: a
    #: listed URL is read from its file instead of being downloaded (offline
    #: deployments, tests).
    alexa_cert_files: dict[str, str] = Field(default_factory=dict)
    #: Largest accepted clock skew of an Alexa request's ``timestamp``.
    alexa_max_skew_s: int = Field(default=150, ge=1)
    #: Largest accepted Alexa request body.
    alexa_max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    #: Largest accepted body of ``POST /api/v1/speaker/ask``.
    http_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: How long a reply's WAV stays retrievable at its ``audio_url``.
    http_audio_ttl_s: int = Field(default=300, ge=10)

    @field_validator("alexa_cert_files", mode="before")
    @classmethod
    def _json_mapping(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value


@lru_cache(maxsize=1)
def get_speaker_settings() -> SpeakerSettings:
    """The process's speaker settings, read once from the environment."""
    return SpeakerSettings()
