"""Reply templates: render a :class:`Reply` into text in the resident's language.

Every sentence the assistant says lives in ``bot/responses.yml`` (Rasa-domain
style: ``responses:`` with an ``en`` and a ``zh`` variant per key and ``{slot}``
placeholders). Code builds :class:`Reply` objects (a key and typed parameters);
this module turns them into text, formatting each parameter for the locale:

* :class:`Money` -> ``¥1,250.00`` in English, ``1,250.00元`` in Chinese (CNY);
  other currencies as ``USD 1,250.00`` / ``1,250.00 USD``. Always two places,
  never through a float.
* :class:`~datetime.date` -> ``31 Oct 2026`` / ``2026年10月31日``.
* :class:`Term` (a utility, a payment method, a status...) -> its localised name
  from the ``terms:`` section.
* a list -> each item rendered, one per line; a tuple -> items joined with commas.
"""

from __future__ import annotations

import string
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

# The vocabulary actions produce (re-exported: the dialogue renders it).
from actions.replies import Attachment as Attachment
from actions.replies import ButtonSpec as ButtonSpec
from actions.replies import Money as Money
from actions.replies import Reply as Reply
from actions.replies import Term as Term
from bot.messages import Button

RESPONSES_FILE = Path(__file__).resolve().parent / "responses.yml"
LANGUAGES = ("en", "zh")
_CENT = Decimal("0.01")
_SYMBOLS = {"CNY": "¥"}
_ZH_SUFFIX = {"CNY": "元"}


class ResponseError(KeyError):
    """A response key or term is missing from the responses file."""


class Responses:
    """The loaded responses file.

    Args:
        path: The YAML file; defaults to the shipped ``bot/responses.yml``.
    """

    def __init__(self, path: Path = RESPONSES_FILE) -> None:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        self._templates: dict[str, dict[str, str]] = {}
        for key, variants in data["responses"].items():
            self._templates[key] = {str(v["language"]): str(v["text"]) for v in variants}
        self._terms: dict[str, dict[str, dict[str, str]]] = data.get("terms", {})

    @property
    def keys(self) -> set[str]:
        """Every response key in the file."""
        return set(self._templates)

    def template(self, key: str, language: str) -> str:
        """The raw template of ``key`` in ``language`` (English if that variant is missing)."""
        try:
            variants = self._templates[key]
        except KeyError:
            raise ResponseError(f"no response {key!r} in {RESPONSES_FILE.name}") from None
        return variants.get(language) or variants["en"]

    def term(self, group: str, value: str, language: str) -> str:
        """The localised name of ``value`` in ``group`` (the value itself if unknown)."""
        names = self._terms.get(group, {}).get(value)
        if not names:
            return value
        return names.get(language) or names.get("en") or value

    def format_value(self, value: Any, language: str) -> str:
        """Format one template parameter for ``language``."""
        if isinstance(value, Money):
            return format_money(value.amount, language, value.currency)
        if isinstance(value, Term):
            return self.term(value.group, value.value, language)
        if isinstance(value, Reply):
            return self.render(value, language)
        if isinstance(value, tuple):
            return ", ".join(self.format_value(v, language) for v in value)
        if isinstance(value, list):
            return "\n".join(self.format_value(v, language) for v in value)
        if isinstance(value, datetime):
            return format_datetime(value, language)
        if isinstance(value, date):
            return format_date(value, language)
        if isinstance(value, Decimal):
            return format_number(value)
        return str(value)

    def render(self, reply: Reply, language: str) -> str:
        """The text of ``reply`` in ``language``."""
        template = self.template(reply.key, language)
        values = {k: self.format_value(v, language) for k, v in reply.params.items()}
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        missing = fields - set(values)
        if missing:
            raise ResponseError(f"response {reply.key!r} needs {sorted(missing)}")
        return template.format(**values)

    def buttons(self, reply: Reply, language: str) -> list[Button]:
        """The rendered buttons of ``reply``."""
        return [
            Button(self.render(Reply(b.key, b.params), language), b.payload) for b in reply.buttons
        ]


def format_number(value: Decimal) -> str:
    """A quantity without trailing zeros noise: ``286``, ``12.5``."""
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):,}"
    return f"{value.normalize():,}"


def format_money(amount: Decimal, language: str, currency: str = "CNY") -> str:
    """Format an amount with its currency for ``language``.

    >>> format_money(Decimal("1250"), "en")
    '¥1,250.00'
    >>> format_money(Decimal("120.5"), "zh")
    '120.50元'
    """
    if not isinstance(amount, Decimal):
        raise TypeError("money must be a Decimal")
    sign = "-" if amount < 0 else ""
    digits = f"{abs(amount).quantize(_CENT):,}"
    if language == "zh":
        suffix = _ZH_SUFFIX.get(currency)
        return f"{sign}{digits}{suffix}" if suffix else f"{sign}{digits} {currency}"
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{currency} {digits}"


def format_date(value: date, language: str) -> str:
    """``31 Oct 2026`` in English, ``2026年10月31日`` in Chinese."""
    if language == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {value.strftime('%b')} {value.year}"


def format_datetime(value: datetime, language: str) -> str:
    """A date and minute in the community's time zone, labelled.

    ``31 Oct 2026 14:05 (Beijing time)`` / ``2026年10月31日 14:05（北京时间）`` for the
    default ``Asia/Shanghai`` (``BILLTALK_TIMEZONE``); another zone is labelled
    with its name. A naive datetime is taken to be UTC.
    """
    from datetime import UTC
    from zoneinfo import ZoneInfo

    from billtalk.settings import get_settings

    zone_name = get_settings().timezone
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError):  # an unknown zone name: show UTC, labelled so
        zone, zone_name = ZoneInfo("UTC"), "UTC"
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
    label = _ZONE_LABELS.get(zone_name, {}).get(language) or zone_name
    text = f"{format_date(local.date(), language)} {local:%H:%M}"
    return f"{text}（{label}）" if language == "zh" else f"{text} ({label})"


#: Names residents know for common community time zones.
_ZONE_LABELS = {
    "Asia/Shanghai": {"en": "Beijing time", "zh": "北京时间"},
    "Asia/Hong_Kong": {"en": "Hong Kong time", "zh": "香港时间"},
    "UTC": {"en": "UTC", "zh": "UTC"},
}


@lru_cache(maxsize=1)
def default_responses() -> Responses:
    """The shipped responses, loaded once."""
    return Responses()
