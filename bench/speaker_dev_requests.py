"""Development requests for the speaker's dialogue-state recognition (2026-12-07).

Written to tune :mod:`speech.expectation` (the state language models, the
carrier-phrase digit grammar, Whisper's state prompts) *before* they were run on
the held-out test requests of bench/speaker_requests.py, and written without
reading that file's answers again: different digits, other wording. Each request
carries the dialogue state a resident says it in (``pin`` after the PIN prompt,
``yes_no`` after a payment confirmation, ``link_code`` on an unpaired speaker,
``None`` for a free request), the same way bench/speaker_engines.py assigns
states to the test requests by their purpose.
"""

from __future__ import annotations

#: (request, purpose) -- the purpose decides the dialogue state (bench/speaker_engines.py).
REQUESTS: list[tuple[str, str]] = [
    # PIN digits, after "Please say your 6-digit PIN"
    ("three one four one five nine", "pin"),
    ("eight eight zero two six one", "pin"),
    ("six zero zero four nine three", "pin"),
    ("two seven one eight two eight", "pin"),
    ("my pin is five five one nine zero seven", "pin"),
    ("it's nine four eight three", "pin"),
    ("zero zero seven one three two", "pin"),
    ("pin one two six six zero nine", "pin"),
    # answers to "Pay 51.25 yuan for water by wallet. Say yes to pay, or no."
    ("yes do it now", "confirm"),
    ("yeah go for it", "confirm"),
    ("okay that sounds right", "confirm"),
    ("yes confirm it", "confirm"),
    ("sure pay the bill", "confirm"),
    ("yes i'm sure", "confirm"),
    ("no thanks not now", "deny"),
    ("no wait", "deny"),
    ("stop please", "deny"),
    ("nope wrong amount", "deny"),
    ("forget it", "deny"),
    ("no leave it", "deny"),
    # on an unpaired speaker, after "say: my link code is ..."
    ("my link code is five five two nine zero one", "link"),
    ("code seven zero three three eight six", "link"),
    ("link code is one six two four nine eight", "link"),
    ("six four zero nine one two", "link"),
    ("link my speaker please", "link"),
    ("i want to pair this device", "link"),
    # free requests in the idle state
    ("unlink the bedroom speaker", "unpair"),
    ("delete our speaker please", "unpair"),
    ("disconnect the living room speaker", "unpair"),
    ("what is my gas bill", "balance"),
    ("when is electricity due", "due"),
    ("pay forty yuan for gas", "pay"),
    ("how much power did we use", "usage"),
]
