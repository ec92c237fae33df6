"""actions/payloads.py: the one button-payload format."""

from __future__ import annotations

from actions.payloads import decode, encode


def test_a_payload_round_trips_with_its_session_stamp() -> None:
    payload = encode("confirm_payment", "ab12cd34", t="tok-1")
    assert payload == '/confirm_payment{"s": "ab12cd34", "t": "tok-1"}'
    assert decode(payload) == ("confirm_payment", {"s": "ab12cd34", "t": "tok-1"})


def test_a_bare_name_is_a_payload_without_data() -> None:
    assert decode("/cancel") == ("cancel", {})


def test_what_is_not_a_payload_decodes_to_none() -> None:
    for text in ("cancel", "/Cancel", '/pay{"a": ', "/pay[1, 2]", '/pay"x"'):
        assert decode(text) is None, text
