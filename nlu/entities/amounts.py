"""Money amounts: digits, currency symbols, English number words and Chinese numerals.

Every amount becomes a :class:`~decimal.Decimal` with exactly two places; no float
is ever involved. Examples::

    >>> parse_amount("$1,250")
    Decimal('1250.00')
    >>> parse_amount("one hundred and fifty")
    Decimal('150.00')
    >>> parse_amount("两千五")
    Decimal('2500.00')

Decisions (see ``docs/nlu-data.md``):

* Negative numbers, ``NaN``/``inf``, zero, more than two decimal places, malformed
  thousands separators ("1,25") and amounts above :data:`MAX_AMOUNT` are rejected.
* "2k" is 2000 and "3.5万" is 35000; "五十块五" is 50.50 (the digit after 块 is 角).
* Ambiguous spoken prices such as "one fifty" or "twenty five fifty" are rejected
  rather than guessed: the dialogue asks for the amount again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from nlu.entities._spans import fold

#: Largest amount accepted; anything above is treated as a typo or an attack.
MAX_AMOUNT = Decimal("1000000.00")
CENT = Decimal("0.01")

__all__ = ["MAX_AMOUNT", "NumberToken", "find_numbers", "format_amount", "parse_amount"]


@dataclass(frozen=True, slots=True)
class NumberToken:
    """A number found in a message, before deciding what it is.

    Attributes:
        start: Offset of the first character (including a currency prefix).
        end: Offset one past the last character (including a currency suffix).
        value: The numeric value, exact.
        kind: ``"digits"``, ``"words"`` (English) or ``"cn"`` (Chinese numerals).
        currency: Whether a currency symbol or word marks it as money.
        digits: The digits as written, separators removed (for readings and codes).
        unit: A non-money unit written right after it ("kwh", "度", "months", "%" ...).
        valid_amount: Whether it may be a money amount at all (positive, two places,
            well-formed, not above :data:`MAX_AMOUNT`).
    """

    start: int
    end: int
    value: Decimal
    kind: str
    currency: bool
    digits: str
    unit: str | None
    valid_amount: bool


def format_amount(value: Decimal) -> str:
    """Format an amount with exactly two decimal places ("150" -> "150.00")."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


# --- units and currency markers ------------------------------------------------------

_PREFIX_RE = re.compile(r"(?:us\$|[$¥]|rmb|cny|usd)\s?$", re.I)
_SUFFIX_RE = re.compile(
    r"\s?(?:块钱|块|元钱|元|圆|人民币|"
    r"(?:rmb|cny|yuan|kuai|dollars?|bucks?|usd|quid)(?![a-z]))",
    re.I,
)
#: Units after a number that make it something other than money.
_UNIT_RE = re.compile(
    r"\s?(?P<unit>kwh|kw|kilowatts?(?:[\s-]hours?)?|m3|m³|cubic(?:\s+met(?:er|re)s?)?|"
    r"gallons?|lit(?:er|re)s?|units?|therms?|degrees?|%|percent|"
    r"st|nd|rd|th|am|pm|a\.m\.|p\.m\.|o'?clock|hours?|hrs?|minutes?|mins?|days?|"
    r"weeks?|months?|years?|yrs?|times?|bills?|payments?|people|persons?|rooms?|"
    r"floors?|apartments?|flats?|units?|"
    r"度|方|立方|吨|个|次|月|天|日|号|年|周|星期|小时|分钟|点|楼|层|室|栋|单元|户|人|张|笔|期|"
    r"多|来|余|几)"
    r"(?![a-z])",
    re.I,
)

_DIGITS_RE = re.compile(
    r"(?:(?<=rmb)|(?<=cny)|(?<=usd)|(?<![A-Za-z0-9.,]))(\d+(?:,\d+)*(?:\.\d+)?)", re.I
)
_MULT_RE = re.compile(
    r"\s?(?:(?P<k>k)(?![a-z])|(?P<cn>[万千百]))|\s(?P<word>hundred|thousand|grand)\b", re.I
)
_MULTIPLIERS = {
    "k": 1000,
    "千": 1000,
    "万": 10_000,
    "百": 100,
    "hundred": 100,
    "thousand": 1000,
    "grand": 1000,
}

# --- English number words ----------------------------------------------------------

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "grand": 1000}
_NUMWORD = "|".join(sorted([*_SMALL, *_TENS, *_SCALES], key=len, reverse=True))
_WORDRUN_RE = re.compile(
    rf"\b(?:an?\s+(?=(?:hundred|thousand|grand)\b))?(?:{_NUMWORD})"
    rf"(?:(?:\s+and\s+|\s+|-)(?:{_NUMWORD}))*\b",
    re.I,
)
_CENTS_RE = re.compile(
    rf"\s+(?:and\s+)?((?:{_NUMWORD})(?:(?:\s+|-)(?:{_NUMWORD}))*|\d{{1,2}})\s+cents?\b", re.I
)
_BARE_CENTS_RE = re.compile(r"\s*cents?\b", re.I)


def _words_value(run: str) -> int | None:
    """Value of an English number-word run, or None if it is not one well-formed number."""
    words = [w for w in re.split(r"[\s-]+", run.lower()) if w and w != "and"]
    if words and words[0] in ("a", "an"):
        words[0] = "one"
    total = 0
    group = 0  # below a thousand
    last = ""  # "unit", "teen", "tens", "hundred", "thousand"
    for w in words:
        if w in _SMALL:
            n = _SMALL[w]
            kind = "teen" if n >= 10 else "unit"
            if last in ("unit", "teen") or (last == "tens" and kind == "teen"):
                return None
            group += n
            last = kind
        elif w in _TENS:
            if last in ("unit", "teen", "tens"):
                return None
            group += _TENS[w]
            last = "tens"
        elif w == "hundred":
            if last in ("", "hundred") or group >= 100:
                return None
            group *= 100
            last = "hundred"
        else:  # thousand / grand
            if last == "thousand" or last == "" or total:
                return None
            total += (group or 1) * 1000
            group = 0
            last = "thousand"
    return total + group


# --- Chinese numerals --------------------------------------------------------------

_CN_DIGIT = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "俩": 2, "三": 3,
    "叁": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7,
    "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_CN_UNIT = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
_CN_CHARS = "".join([*_CN_DIGIT, *_CN_UNIT, *_CN_BIG])
_CN_RUN_RE = re.compile(rf"[{_CN_CHARS}]+(?:点[{''.join(_CN_DIGIT)}]+[万千]?)?")
_CN_JIAO_RE = re.compile(rf"([{''.join(_CN_DIGIT)}]|\d)(?:[毛角]|(?![{_CN_CHARS}\d]))")
_CN_FEN_RE = re.compile(rf"([{''.join(_CN_DIGIT)}]|\d)分")


def cn_int(text: str) -> int | None:
    """Value of a Chinese integer numeral ("一千二百五十" -> 1250, "两千五" -> 2500).

    A digit sequence without units ("二零二五") reads digit by digit.
    Returns None when ``text`` is not a well-formed numeral.
    """
    if not text or len(text) > 16:  # longer than any amount, reading or code
        return None
    if all(ch in _CN_DIGIT for ch in text):
        return int("".join(str(_CN_DIGIT[ch]) for ch in text))
    total = 0
    section = 0
    digit: int | None = None
    last_unit = 0
    prev_was_unit = False
    zero_seen = False
    for ch in text:
        if ch in _CN_DIGIT:
            n = _CN_DIGIT[ch]
            if n == 0:
                zero_seen = True
                prev_was_unit = False
                continue
            if digit is not None:
                return None
            digit = n
            prev_was_unit = False
        elif ch in _CN_UNIT:
            unit = _CN_UNIT[ch]
            if last_unit and unit >= last_unit and not zero_seen and section:
                return None
            section += (digit if digit is not None else 1) * unit
            digit = None
            last_unit = unit
            prev_was_unit = True
            zero_seen = False
        else:
            big = _CN_BIG[ch]
            if digit is not None:
                section += digit
            if section == 0:
                return None
            total += section * big
            section = 0
            digit = None
            last_unit = big
            prev_was_unit = True
            zero_seen = False
    if digit is not None:
        if prev_was_unit is False and last_unit >= 100 and not zero_seen and _elided(text):
            section += digit * (last_unit // 10)
        else:
            section += digit
    return total + section


def _elided(text: str) -> bool:
    """Whether the final digit directly follows a unit of a hundred or more ("两千五")."""
    return len(text) >= 2 and text[-2] in "百佰千仟万萬亿"


def _cn_value(run: str) -> Decimal | None:
    mult = 1
    if "点" in run:
        whole, _, frac = run.partition("点")
        if frac and frac[-1] in "万千":
            mult = 10_000 if frac[-1] == "万" else 1000
            frac = frac[:-1]
        w = cn_int(whole)
        if w is None or not frac:
            return None
        return (Decimal(w) + Decimal("0." + "".join(str(_CN_DIGIT[c]) for c in frac))) * mult
    n = cn_int(run)
    return None if n is None else Decimal(n)


# --- scanning ----------------------------------------------------------------------


def _valid(value: Decimal, decimals_ok: bool = True) -> bool:
    return (
        value.is_finite()
        and value > 0
        and value <= MAX_AMOUNT
        and decimals_ok
        and value == value.quantize(CENT, rounding=ROUND_HALF_UP)
    )


def _unit_after(text: str, end: int) -> str | None:
    m = _UNIT_RE.match(text, end)
    return m.group("unit").lower() if m else None


def _currency_after(text: str, end: int) -> int | None:
    m = _SUFFIX_RE.match(text, end)
    return m.end() if m else None


def _negative_before(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " $¥":
        i -= 1
    return i >= 0 and text[i] in "-−" and (i == 0 or not text[i - 1].isdigit())


def _digit_tokens(text: str) -> list[NumberToken]:
    out: list[NumberToken] = []
    for m in _DIGITS_RE.finditer(text):
        raw = m.group(1)
        start, end = m.start(1), m.end(1)
        groups = raw.split(".")[0].split(",")
        well_formed = len(groups) == 1 or (
            1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
        )
        try:
            value = Decimal(raw.replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the regex only admits digits
            continue
        currency = False
        pre = _PREFIX_RE.search(text, max(0, start - 5), start)
        if pre:
            start = pre.start()
            currency = True
        mult = _MULT_RE.match(text, end)
        if mult and not (mult.group("cn") and _UNIT_RE.match(text, mult.end())):
            value *= _MULTIPLIERS[mult.group(0).strip().lower()]
            end = mult.end()
        suffix_end = _currency_after(text, end)
        unit = None
        if suffix_end is not None:
            currency = True
            end = suffix_end
            end = _chinese_jiao(text, end, value_holder := [value])
            value = value_holder[0]
        else:
            unit = _unit_after(text, end)
            cents = _BARE_CENTS_RE.match(text, end)
            if cents and "." not in raw and value < 100:
                value = value / 100
                currency = True
                end = cents.end()
        decimals_ok = "." not in raw or len(raw.split(".")[1]) <= 2 or bool(mult)
        next_ch = text[end : end + 1]
        glued = bool(next_ch) and (next_ch.isascii() and next_ch.isalpha()) and unit is None
        adjacent_date = _date_like(text, m.start(1), m.end(1))
        valid = (
            well_formed
            and _valid(value, decimals_ok)
            and not _negative_before(text, m.start(1))
            and not glued
            and not adjacent_date
        )
        out.append(
            NumberToken(
                start=start,
                end=end,
                value=value,
                kind="digits",
                currency=currency,
                digits=raw.replace(",", ""),
                unit=unit,
                valid_amount=valid and (unit is None or currency),
            )
        )
    return out


def _date_like(text: str, start: int, end: int) -> bool:
    before = text[start - 1 : start]
    after = text[end : end + 2]
    if before in (":", "/") or after[:1] in (":", "/"):
        return True
    return bool(re.match(r"-\d", after)) or (
        before == "-" and text[start - 2 : start - 1].isdigit()
    )


def _chinese_jiao(text: str, end: int, holder: list[Decimal]) -> int:
    """Extend ``end`` over "五毛", "五角" or a bare trailing "五" after 块/元 ("五十块五")."""
    if end == 0 or text[end - 1] not in "块元圆钱":
        return end
    m = _CN_JIAO_RE.match(text, end)
    if m:
        d = m.group(1)
        n = int(d) if d.isdigit() else _CN_DIGIT[d]
        holder[0] += Decimal(n) / 10
        end = m.end()
        f = _CN_FEN_RE.match(text, end)
        if f:
            d = f.group(1)
            holder[0] += Decimal(int(d) if d.isdigit() else _CN_DIGIT[d]) / 100
            end = f.end()
    return end


def _word_tokens(text: str) -> list[NumberToken]:
    out: list[NumberToken] = []
    for m in _WORDRUN_RE.finditer(text):
        run = m.group(0)
        # A trailing "and" belongs to the sentence, not the number.
        n = _words_value(run)
        start, end = m.start(), m.end()
        currency = False
        value = Decimal(n) if n is not None else Decimal(0)
        cents_m = None
        suffix_end = _currency_after(text, end)
        if suffix_end is not None:
            currency = True
            end = suffix_end
            cents_m = _CENTS_RE.match(text, end)
        else:
            bare = _BARE_CENTS_RE.match(text, end)
            if bare and n is not None and n < 100:
                value = Decimal(n) / 100
                currency = True
                end = bare.end()
        if cents_m:
            c = cents_m.group(1)
            cv = int(c) if c.isdigit() else _words_value(c)
            if cv is not None and cv < 100:
                value += Decimal(cv) / 100
                end = cents_m.end()
        unit = None if currency else _unit_after(text, end)
        out.append(
            NumberToken(
                start=start,
                end=end,
                value=value,
                kind="words",
                currency=currency,
                digits=str(n) if n is not None else "",
                unit=unit,
                valid_amount=n is not None and _valid(value) and unit is None,
            )
        )
    return out


def _cn_tokens(text: str) -> list[NumberToken]:
    out: list[NumberToken] = []
    for m in _CN_RUN_RE.finditer(text):
        run = m.group(0)
        value = _cn_value(run)
        start, end = m.start(), m.end()
        if value is None:
            continue
        currency = False
        unit = None
        suffix_end = _currency_after(text, end)
        if suffix_end is not None:
            currency = True
            end = suffix_end
            end = _chinese_jiao(text, end, holder := [value])
            value = holder[0]
        else:
            m2 = re.match(r"[毛角]", text[end : end + 1])
            if m2:
                value = value / 10
                currency = True
                end += 1
            else:
                unit = _unit_after(text, end)
        digits = str(int(value)) if value == value.to_integral_value() else str(value)
        out.append(
            NumberToken(
                start=start,
                end=end,
                value=value,
                kind="cn",
                currency=currency,
                digits=digits,
                unit=unit,
                valid_amount=_valid(value) and unit is None,
            )
        )
    return out


def find_numbers(text: str) -> list[NumberToken]:
    """Every number in ``text`` (digits, English words, Chinese numerals), in order.

    Overlapping finds are resolved in favour of the earlier, then longer, one.
    Offsets refer to ``text`` as given.
    """
    folded = fold(text)
    found = _digit_tokens(folded) + _word_tokens(folded) + _cn_tokens(folded)
    found.sort(key=lambda t: (t.start, -(t.end - t.start)))
    out: list[NumberToken] = []
    for tok in found:
        if out and tok.start < out[-1].end:
            continue
        out.append(tok)
    return out


def parse_amount(text: str) -> Decimal | None:
    """Parse the money amount in ``text``.

    Lenient about the surrounding words ("pay 60 please", "$45.50", "三百块"), strict
    about the number: negative, zero, non-finite, over-precise, malformed or absurd
    amounts give ``None``, as does text with no number or with two different amounts.

    Args:
        text: A message or a fragment of one.

    Returns:
        The amount with exactly two decimal places, or ``None``.
    """
    if not text or len(text) > 2000:
        return None
    tokens = find_numbers(text)
    if not tokens:
        return None
    money = [t for t in tokens if t.currency] or [t for t in tokens if t.unit is None]
    if len({t.value for t in money}) != 1:
        return None
    tok = money[0]
    if not tok.valid_amount:
        return None
    return tok.value.quantize(CENT, rounding=ROUND_HALF_UP)
