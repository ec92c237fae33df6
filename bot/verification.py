"""Moved: the verifier contract is the top-level package :mod:`verification` (alias, goes away)."""

from verification import *  # noqa: F403
