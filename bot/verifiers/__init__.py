"""The registry of step-up verifiers.

The PIN verifier is always available. The face and voice verifiers are built by
the biometrics packages (``biometrics.face.verifier.FaceVerifier`` and
``biometrics.voice.verifier.VoiceVerifier``); :func:`build_registry` adds them
when they can be imported and constructed, so the dialogue offers them as soon
as they land, without a change here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime

from billtalk.logs import get_logger
from bot.messages import utcnow
from bot.store import ConversationStore
from bot.verifiers.pin import PinVerifier
from verification import VerificationKind, Verifier

log = get_logger("bot.verifiers")

#: Where the biometric verifiers live: (kind, module, class).
PLUGGABLE = (
    (VerificationKind.FACE, "biometrics.face.verifier", "FaceVerifier"),
    (VerificationKind.VOICE, "biometrics.voice.verifier", "VoiceVerifier"),
)


def _construct(cls: type, store: ConversationStore) -> Verifier | None:
    """Build a biometric verifier: both take the template store as first argument."""
    from biometrics.store import TemplateStore

    verifier = cls(TemplateStore(store.engine))
    return verifier if isinstance(verifier, Verifier) else None


def build_registry(
    store: ConversationStore,
    clock: Callable[[], datetime] = utcnow,
    *,
    include_biometrics: bool = True,
) -> dict[VerificationKind, Verifier]:
    """The verifiers available in this process, keyed by kind (PIN first)."""
    registry: dict[VerificationKind, Verifier] = {VerificationKind.PIN: PinVerifier(store, clock)}
    if not include_biometrics:
        return registry
    for kind, module_name, class_name in PLUGGABLE:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        if cls is None:
            continue
        try:
            verifier = _construct(cls, store)
        except Exception as exc:  # a broken plug-in must not take the dialogue down
            log.warning("verifier_unavailable", kind=str(kind), error=type(exc).__name__)
            continue
        if verifier is not None:
            registry[kind] = verifier
    return registry


__all__ = ["PinVerifier", "build_registry"]
