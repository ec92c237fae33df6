"""Fixtures for action unit tests: a fake billing client and a renderer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from bot.responses import default_responses
from tests.actions.fakes import FakeBillingClient


@pytest.fixture
def client() -> FakeBillingClient:
    return FakeBillingClient()


@pytest.fixture
def make_ctx(client: FakeBillingClient) -> Callable[..., ActionContext]:
    def build(language: str = "en", text: str = "", **entities: Any) -> ActionContext:
        return ActionContext(
            client=client,
            resident=client.resident,
            language=language,
            entities=entities,
            slots={},
            text=text,
            today=date(2026, 11, 20),
            session="abcd1234",
        )

    return build


@pytest.fixture
def render() -> Callable[[ActionResult, str], str]:
    responses = default_responses()

    def _render(result: ActionResult, language: str = "en") -> str:
        return "\n".join(responses.render(r, language) for r in result.replies)

    return _render
