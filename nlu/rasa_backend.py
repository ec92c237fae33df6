"""The optional ``rasa`` backend: ask a running Rasa server's ``POST /model/parse``.

A team that already runs Rasa can point billtalk at it::

    BILLTALK_NLU_BACKEND=rasa
    BILLTALK_NLU_RASA_URL=http://localhost:5005
    BILLTALK_NLU_RASA_TOKEN=...        # the server's --auth-token, if any

:func:`nlu.load_model` then returns a :class:`RasaHttpModel`, which has the same
``parse`` / ``parse_many`` methods as :class:`nlu.model.NluModel`. Results are
Rasa's own JSON, completed with ``language`` (detected here) when Rasa leaves it out.
How to start a server is in ``docs/nlu.md``.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

import httpx

from nlu.language import detect_language
from nlu.settings import get_nlu_settings

_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']+")


class _RedactToken(logging.Filter):
    """Hide ``?token=...`` in httpx's request log lines (Rasa takes the token only as a
    query parameter, and httpx logs every request URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _TOKEN_IN_URL.sub(r"\1***", message), None
        return True


def _install_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactToken) for f in logger.filters):
        logger.addFilter(_RedactToken())


class RasaBackendError(RuntimeError):
    """Raised when the Rasa server cannot be reached or answers with an error."""


class RasaHttpModel:
    """Client of a Rasa server's NLU endpoint.

    Args:
        url: Base URL of the server (``rasa run --enable-api``), e.g. ``http://localhost:5005``.
        token: The server's ``--auth-token`` (sent as the ``token`` query parameter),
            empty for none.
        timeout_s: HTTP timeout per request.
        transport: Optional httpx transport (for in-process servers).
    """

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url:
            raise RasaBackendError("BILLTALK_NLU_RASA_URL is not set")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._params = {"token": token} if token else {}
        _install_redaction()
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def parse(self, text: str, *, reference_date: date | None = None) -> dict[str, Any]:
        """Send ``text`` to ``POST /model/parse`` and return Rasa's JSON.

        ``reference_date`` is not part of Rasa's API and is ignored.

        Raises:
            RasaBackendError: On connection errors, timeouts, a rejected token, error
                answers, or an answer that is not a JSON object (not a Rasa server).
        """
        del reference_date
        text = text[: get_nlu_settings().max_chars]
        try:
            response = self._client.post(
                f"{self.url}/model/parse", params=self._params, json={"text": text}
            )
        except httpx.TimeoutException as exc:
            raise RasaBackendError(
                f"Rasa server {self.url} did not answer within {self.timeout_s:g} s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise RasaBackendError(f"Rasa server {self.url} unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            hint = (
                "set BILLTALK_NLU_RASA_TOKEN to the server's --auth-token"
                if not self._params
                else "BILLTALK_NLU_RASA_TOKEN does not match the server's --auth-token"
            )
            raise RasaBackendError(
                f"Rasa server {self.url} refused the request ({response.status_code}): {hint}"
            )
        if response.status_code >= 400:
            raise RasaBackendError(
                f"Rasa server {self.url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            result = response.json()
        except ValueError as exc:
            raise RasaBackendError(
                f"{self.url}/model/parse did not answer JSON (is it a Rasa server started "
                f"with --enable-api?): {response.text[:100]!r}"
            ) from exc
        if not isinstance(result, dict):
            raise RasaBackendError(
                f"{self.url}/model/parse answered {type(result).__name__}, "
                "not a parse result object"
            )
        result.setdefault("language", detect_language(text))
        result.setdefault("entities", [])
        result.setdefault("intent_ranking", [])
        intent = result.get("intent")
        if not isinstance(intent, dict) or intent.get("name") is None:
            result["intent"] = {"name": "nlu_fallback", "confidence": 1.0}
        return result

    def parse_many(
        self, texts: list[str], *, reference_date: date | None = None
    ) -> list[dict[str, Any]]:
        """Parse messages one request at a time (Rasa has no batch endpoint)."""
        return [self.parse(t, reference_date=reference_date) for t in texts]
