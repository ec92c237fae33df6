"""Settings of the NLU engine (``BILLTALK_NLU_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NluSettings(BaseSettings):
    """Knobs of :mod:`nlu`.

    Attributes:
        backend: ``"local"`` (billtalk's own trained engine) or ``"rasa"`` (a running
            Rasa server's ``POST /model/parse``).
        threshold: Override the out-of-scope threshold stored in the model metadata
            (chosen on validation data at training time). ``None`` keeps the stored one.
        rasa_url: Base URL of the Rasa server, e.g. ``http://localhost:5005``.
        rasa_token: Rasa's ``--auth-token`` (sent as ``?token=``), empty for none.
        rasa_timeout_s: HTTP timeout for the Rasa backend.
        max_chars: Messages are cut to this many characters before classification
            (entities are still looked for in the whole text up to this bound).
        use_encoder: Use the MiniLM sentence encoder when training (models trained
            without it never load torch).
        encoder_runtime: The MiniLM forward pass: ``"onnx"`` (ONNX Runtime on the graph
            exported by :mod:`nlu.encoder_onnx`; about half torch's CPU per message,
            same vectors to rounding) or ``"torch"`` (:class:`nlu.bert.LeanBert`).
    """

    model_config = SettingsConfigDict(env_prefix="BILLTALK_NLU_", extra="ignore", frozen=True)

    backend: Literal["local", "rasa"] = "local"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    rasa_url: str = ""
    rasa_token: str = Field(default="", repr=False)
    rasa_timeout_s: float = 10.0
    max_chars: int = Field(default=2000, ge=1)
    use_encoder: bool = True
    encoder_runtime: Literal["onnx", "torch"] = "onnx"


@lru_cache
def get_nlu_settings() -> NluSettings:
    """Return the process-wide :class:`NluSettings` (read once from the environment)."""
    return NluSettings()
