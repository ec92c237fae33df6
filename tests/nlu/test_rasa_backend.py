"""The optional Rasa backend against a real Rasa server (only when RASA_URL is set).

Start one as described in docs/nlu.md, then run
``RASA_URL=http://localhost:5005 pytest tests/nlu/test_rasa_backend.py``.
"""

from __future__ import annotations

import os

import pytest

from nlu.rasa_backend import RasaBackendError, RasaHttpModel

RASA_URL = os.environ.get("RASA_URL", "")


@pytest.mark.rasa
@pytest.mark.skipif(not RASA_URL, reason="RASA_URL not set: no Rasa server to test against")
def test_parse_through_a_running_rasa_server() -> None:
    model = RasaHttpModel(RASA_URL, os.environ.get("RASA_TOKEN", ""))
    result = model.parse("how much is my bill")
    assert isinstance(result["intent"]["name"], str)
    assert result["intent_ranking"]
    assert result["language"] == "en"
    assert model.parse("交300元燃气费")["language"] == "zh"


def test_unreachable_server_is_a_clear_error() -> None:
    model = RasaHttpModel("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(RasaBackendError, match="unreachable"):
        model.parse("hello")


def test_backend_needs_a_url() -> None:
    with pytest.raises(RasaBackendError, match="RASA_URL"):
        RasaHttpModel("")


def test_load_model_selects_the_rasa_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    import nlu
    from nlu.settings import get_nlu_settings

    monkeypatch.setenv("BILLTALK_NLU_BACKEND", "rasa")
    monkeypatch.setenv("BILLTALK_NLU_RASA_URL", "http://127.0.0.1:9")
    get_nlu_settings.cache_clear()
    try:
        assert isinstance(nlu.load_model(), RasaHttpModel)
    finally:
        get_nlu_settings.cache_clear()
