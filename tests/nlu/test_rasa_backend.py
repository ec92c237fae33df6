"""The optional Rasa backend.

The ``rasa``-marked tests talk to a real Rasa server and run only when ``RASA_URL`` is
set (``RASA_TOKEN``: its ``--auth-token``, if any). Start one as described in
docs/nlu.md, then run
``RASA_URL=http://127.0.0.1:5005 RASA_TOKEN=... pytest tests/nlu/test_rasa_backend.py``.
The other tests need no Rasa: they use real sockets that refuse, stall or answer
something that is not Rasa.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nlu import DATA_DIR
from nlu.rasa_backend import RasaBackendError, RasaHttpModel
from nlu.rasa_yaml import load_training_data

RASA_URL = os.environ.get("RASA_URL", "")
RASA_TOKEN = os.environ.get("RASA_TOKEN", "")
BILLTALK = os.path.join(os.path.dirname(sys.executable), "billtalk")

requires_rasa = pytest.mark.skipif(
    not RASA_URL, reason="RASA_URL not set: no Rasa server to test against"
)


def _check_parse_json(result: dict[str, Any], text: str) -> None:
    """Rasa's /model/parse shape, as CONTRACTS.md promises it."""
    assert result["text"] == text
    assert isinstance(result["intent"]["name"], str)
    assert 0.0 <= result["intent"]["confidence"] <= 1.0
    ranking = result["intent_ranking"]
    assert ranking and all(isinstance(r["name"], str) for r in ranking)
    assert ranking[0]["name"] == result["intent"]["name"]
    # Rasa's FallbackClassifier puts nlu_fallback first, with the threshold as its
    # confidence, even above a classifier score (ambiguity); the rest is sorted.
    confidences = [r["confidence"] for r in ranking if r["name"] != "nlu_fallback"]
    assert confidences == sorted(confidences, reverse=True)
    for ent in result["entities"]:
        assert {"entity", "value", "start", "end"} <= set(ent)
        assert 0 <= ent["start"] < ent["end"] <= len(text)


@pytest.fixture(scope="module")
def rasa() -> Iterator[RasaHttpModel]:
    model = RasaHttpModel(RASA_URL, RASA_TOKEN, timeout_s=30)
    yield model
    model.close()


@pytest.mark.rasa
@requires_rasa
def test_parse_through_a_running_rasa_server(rasa: RasaHttpModel) -> None:
    for text, language in (("how much is my bill", "en"), ("交300元燃气费", "zh"), ("", "en")):
        result = rasa.parse(text)
        _check_parse_json(result, text)
        assert result["language"] == language
    many = rasa.parse_many(["hi", "put 60 on the water account"])
    assert [r["text"] for r in many] == ["hi", "put 60 on the water account"]


@pytest.mark.rasa
@requires_rasa
def test_rasa_model_trained_on_nlu_data(rasa: RasaHttpModel) -> None:
    """When the server runs a model trained on ``nlu/data`` (docs/nlu.md), it must
    understand clear bill requests; another team's model is skipped, loudly."""
    ours = set(load_training_data(DATA_DIR).intents) | {"nlu_fallback"}
    served = {r["name"] for r in rasa.parse("how much is my bill")["intent_ranking"]}
    if not served <= ours:
        pytest.skip(f"the Rasa server's model has other intents: {sorted(served - ours)[:5]}")
    assert rasa.parse("how much do i owe")["intent"]["name"] == "check_balance"
    assert rasa.parse("交300元燃气费")["intent"]["name"] == "pay_bill"
    assert rasa.parse("what's the weather tomorrow")["intent"]["name"] in (
        "out_of_scope",
        "nlu_fallback",
    )
    paid = rasa.parse("put 60 on the water account")
    assert paid["intent"]["name"] == "pay_bill"
    values = {e["entity"]: e["value"] for e in paid["entities"]}
    assert values.get("utility") == "water"


@pytest.mark.rasa
@requires_rasa
def test_wrong_or_missing_token_is_a_clear_error() -> None:
    if not RASA_TOKEN:
        pytest.skip("RASA_TOKEN not set: the server is assumed to run without --auth-token")
    for token, message in (
        ("not-the-token", "does not match"),
        ("", "set BILLTALK_NLU_RASA_TOKEN"),
    ):
        model = RasaHttpModel(RASA_URL, token)
        with pytest.raises(RasaBackendError, match=message):
            model.parse("hello")
        model.close()


@pytest.mark.rasa
@requires_rasa
def test_cli_parse_through_rasa_keeps_the_token_out_of_logs() -> None:
    env = {
        **os.environ,
        "BILLTALK_NLU_BACKEND": "rasa",
        "BILLTALK_NLU_RASA_URL": RASA_URL,
        "BILLTALK_NLU_RASA_TOKEN": RASA_TOKEN,
        "BILLTALK_LOG_LEVEL": "INFO",
    }
    done = subprocess.run(
        [BILLTALK, "nlu", "parse", "-"],
        input="how much do i owe\n交300元燃气费\n".encode(),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["text"] for r in lines] == ["how much do i owe", "交300元燃气费"]
    assert [r["language"] for r in lines] == ["en", "zh"]
    if RASA_TOKEN:
        assert RASA_TOKEN.encode() not in done.stderr


# --- no Rasa needed -------------------------------------------------------------------


def test_unreachable_server_is_a_clear_error() -> None:
    model = RasaHttpModel("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(RasaBackendError, match="unreachable"):
        model.parse("hello")


def test_backend_needs_a_url() -> None:
    with pytest.raises(RasaBackendError, match="RASA_URL"):
        RasaHttpModel("")


def test_silent_server_times_out_clearly() -> None:
    """A server that accepts the connection and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        model = RasaHttpModel(f"http://127.0.0.1:{port}", timeout_s=0.5)
        with pytest.raises(RasaBackendError, match=r"did not answer within 0\.5 s"):
            model.parse("hello")


class _NotRasa(BaseHTTPRequestHandler):
    """Some other web server at the configured URL: answers HTML, or a JSON list."""

    def do_POST(self) -> None:
        body = b"[1, 2]" if "json" in self.path else b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture()
def not_rasa() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotRasa)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_is_not_rasa_is_a_clear_error(
    not_rasa: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        with pytest.raises(RasaBackendError, match="did not answer JSON"):
            RasaHttpModel(not_rasa, "s3cret-token").parse("hello")
        with pytest.raises(RasaBackendError, match="not a parse result object"):
            RasaHttpModel(f"{not_rasa}/json", "s3cret-token").parse("hello")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=***" in logged
    assert "s3cret-token" not in logged


def test_cli_reports_a_down_server_without_a_traceback() -> None:
    env = {
        **os.environ,
        "BILLTALK_NLU_BACKEND": "rasa",
        "BILLTALK_NLU_RASA_URL": "http://127.0.0.1:9",
        "BILLTALK_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [BILLTALK, "nlu", "parse", "hello"], env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert b"error: Rasa server http://127.0.0.1:9 unreachable" in done.stderr
    assert b"Traceback" not in done.stderr
    assert done.stdout == b""


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
