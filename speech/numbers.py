"""Numbers between speech and text, both ways.

Recognisers produce words ("one hundred twenty dollars and fifty cents", "four
seven one nine"); the NLU and the challenge checker want figures ("120.50",
"4719"). Replies hold figures ("¥120.50", "2026-03-05", "4 7 1 9 0 2"); the
synthesiser must say them the way a person would ("one hundred twenty yuan and
fifty fen", "March fifth, twenty twenty-six", "four seven one nine zero two"),
not "one two zero point five zero".

Wording (see docs/speech.md): the product currency is CNY, spoken as "yuan" and
"fen" (1 yuan = 100 fen; "jiao" is skipped because "fifty fen" is exact and
easier for a listener than "five jiao"). USD is "dollars" and "cents". Other
currencies are spoken as the number followed by the code.

Everything here is exact: :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

__all__ = [
    "amount_to_words",
    "date_to_words",
    "digits_to_words",
    "int_to_words",
    "normalize_transcript",
    "speakable",
    "spoken_digits",
    "spoken_to_number",
]

DIGIT_WORDS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_SMALL = {**{w: v for w, v in DIGIT_WORDS.items() if w not in ("oh", "o")}, **_TEENS, **_TENS}
_NUMBER_WORDS = set(_SMALL) | set(_SCALES) | {"a", "oh", "o"}

#: Spoken currency words: (major unit words, minor unit words, code used in text).
CURRENCY_WORDS = {
    "CNY": ("yuan", "fen"),
    "USD": ("dollars", "cents"),
}
_MAJOR = {"yuan", "kuai", "dollar", "dollars", "bucks", "rmb", "renminbi"}
_MINOR = {"fen", "cent", "cents"}
_ORDINALS = {
    1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh",
    8: "eighth", 9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth", 13: "thirteenth",
    14: "fourteenth", 15: "fifteenth", 16: "sixteenth", 17: "seventeenth", 18: "eighteenth",
    19: "nineteenth", 20: "twentieth", 30: "thirtieth",
}  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
]  # fmt: skip


# --- words -> figures -------------------------------------------------------------


def _parse_cardinal(tokens: list[str]) -> int | None:
    """Value of a whole cardinal in words ("one hundred and five" -> 105), or None."""
    if not tokens:
        return None
    total = 0
    current = 0
    seen = False
    prev: str | None = None
    for tok in tokens:
        if tok == "and":
            if prev is None or prev == "and":
                return None
            prev = tok
            continue
        if tok == "a":
            current += 1
            seen = True
        elif tok in _SMALL:
            value = _SMALL[tok]
            # "twenty three" is fine, "three twenty" or "five six" is not a cardinal.
            if prev in _SMALL and not (prev in _TENS and value < 10):
                return None
            if prev == "a":
                return None
            current += value
            seen = True
        elif tok in _SCALES:
            scale = _SCALES[tok]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
            seen = True
        else:
            return None
        prev = tok
    if not seen or prev == "and":
        return None
    return total + current


def spoken_digits(text: str) -> str | None:
    """The digit string spoken as single digits ("four seven oh nine" -> "4709").

    Returns None if any word is not a digit word. Figures pass through, so
    "4 7 1 9" gives "4719" too.
    """
    out = []
    for tok in _tokens(text):
        if tok in DIGIT_WORDS:
            out.append(str(DIGIT_WORDS[tok]))
        elif tok.isdigit():
            out.append(tok)
        else:
            return None
    return "".join(out) or None


def spoken_to_number(text: str) -> Decimal | None:
    """Parse a spoken amount into an exact number.

    Examples:
        >>> spoken_to_number("one hundred twenty dollars and fifty cents")
        Decimal('120.50')
        >>> spoken_to_number("three hundred yuan")
        Decimal('300')
        >>> spoken_to_number("twelve point five")
        Decimal('12.5')
        >>> spoken_to_number("fifty cents")
        Decimal('0.50')

    Returns:
        The value, or None when the words are not one amount.
    """
    tokens = [t for t in _tokens(text)]
    if not tokens:
        return None
    major_idx = next((i for i, t in enumerate(tokens) if t in _MAJOR), None)
    minor_idx = next((i for i, t in enumerate(tokens) if t in _MINOR), None)
    if major_idx is not None or minor_idx is not None:
        major_tokens = tokens[:major_idx] if major_idx is not None else []
        rest = tokens[major_idx + 1 :] if major_idx is not None else tokens
        if minor_idx is not None:
            minor_tokens = rest[: len(rest) - (len(tokens) - minor_idx)]
            if minor_tokens and minor_tokens[0] == "and":
                minor_tokens = minor_tokens[1:]
            if tokens[minor_idx + 1 :] or not minor_tokens:
                return None  # words after "cents", or "cents" with no number
        else:
            minor_tokens = []
            if rest:
                return None
        major = _parse_cardinal(major_tokens) if major_tokens else 0
        minor = _parse_cardinal(minor_tokens) if minor_tokens else 0
        if major is None or minor is None or minor >= 100:
            return None
        if not major_tokens and not minor_tokens:
            return None
        if minor_idx is not None:
            return (Decimal(major) + Decimal(minor) / 100).quantize(Decimal("0.01"))
        return Decimal(major)
    if "point" in tokens:
        i = tokens.index("point")
        whole = _parse_cardinal(tokens[:i]) if i else 0
        frac = spoken_digits(" ".join(tokens[i + 1 :]))
        if whole is None or frac is None:
            return None
        return Decimal(f"{whole}.{frac}")
    value = _parse_cardinal(tokens)
    return Decimal(value) if value is not None else None


def normalize_transcript(text: str) -> str:
    """Rewrite spoken numbers in a transcript as figures the NLU parses.

    Amounts keep their currency word so the NLU knows they are money
    ("pay one hundred twenty yuan and fifty fen" -> "pay 120.50 yuan"); runs of
    two or more single digits become one digit string ("my code is four seven
    one nine" -> "my code is 4719"); other cardinals become integers ("a
    reading of twelve thousand three hundred" -> "a reading of 12300").
    """
    tokens = _tokens(text)
    out: list[str] = []
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        if tok in _NUMBER_WORDS and not (tok in ("a", "o") and not _starts_number(tokens, i)):
            j = i
            while j < n and (
                tokens[j] in _NUMBER_WORDS
                or (
                    tokens[j] in ("and", "point")
                    and j + 1 < n
                    and tokens[j + 1] in _NUMBER_WORDS
                    and "point" not in tokens[i:j]
                )
            ):
                j += 1
            span = tokens[i:j]
            # A run of single digits is a digit string ("four seven one nine").
            if len(span) >= 2 and all(t in DIGIT_WORDS for t in span) and span[0] != "a":
                out.append("".join(str(DIGIT_WORDS[t]) for t in span))
                i = j
                continue
            # Money: "<cardinal> <major> [and] [<cardinal> <minor>]".
            k = j
            currency_word = None
            if k < n and tokens[k] in _MAJOR:
                currency_word = tokens[k]
                k += 1
                m = k + 1 if k < n and tokens[k] == "and" else k
                e = m
                while e < n and tokens[e] in _NUMBER_WORDS:
                    e += 1
                if e > m and e < n and tokens[e] in _MINOR:
                    value = spoken_to_number(" ".join(tokens[i : e + 1]))
                    if value is not None:
                        out.append(f"{value:.2f} {_text_currency(currency_word)}")
                        i = e + 1
                        continue
            elif k < n and tokens[k] in _MINOR:
                value = spoken_to_number(" ".join(tokens[i : k + 1]))
                if value is not None:
                    out.append(f"{value:.2f}")
                    i = k + 1
                    continue
            value = spoken_to_number(" ".join(span))
            if value is None:
                out.append(tok)
                i += 1
                continue
            if currency_word is not None:
                out.append(f"{value:.2f} {_text_currency(currency_word)}")
                i = k
            else:
                out.append(str(value))
                i = j
            continue
        out.append(tok)
        i += 1
    return _join_figure_amounts(" ".join(out))


#: An amount said in figures with its minor unit ("12 yuan and 40 fen", as Whisper
#: writes what pocketsphinx's words make "12.40 yuan"), or the minor unit alone.
_FIGURE_AMOUNT = re.compile(
    r"(?<!\d )(?<![\d.])(\d+)(?:\.00)? (yuan|kuai|dollars?|bucks) (?:and )?"
    r"(?:(\d{1,2}) (?:fen|cents?)|0\.(\d\d))(?![\w.])"
)
_FIGURE_MINOR = re.compile(r"(?<![\d.])(\d{1,2}) (?:fen|cents?)(?![\w.])")


def _join_figure_amounts(text: str) -> str:
    """``12 yuan and 40 fen`` -> ``12.40 yuan`` and ``40 fen`` -> ``0.40``: figures read
    the way the word pass reads "twelve yuan and forty fen" (the NLU would otherwise
    see two amounts, 12 and 40)."""

    def whole(m: re.Match[str]) -> str:
        minor = int(m[3]) if m[3] is not None else int(m[4])
        return f"{int(m[1])}.{minor:02d} {_text_currency(m[2])}"

    text = _FIGURE_AMOUNT.sub(whole, text)
    return _FIGURE_MINOR.sub(lambda m: f"0.{int(m[1]):02d}", text)


def _starts_number(tokens: list[str], i: int) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1] in _SCALES


def _text_currency(word: str) -> str:
    return "dollars" if word.startswith(("dollar", "buck")) else "yuan"


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?|\d+", text.lower().replace("-", " "))


# --- figures -> words ---------------------------------------------------------------


def int_to_words(n: int) -> str:
    """Say a non-negative integer in English ("1250" -> "one thousand two hundred fifty")."""
    if n < 0:
        return "minus " + int_to_words(-n)
    if n < 10:
        return _UNITS[n]
    if n < 20:
        return next(w for w, v in _TEENS.items() if v == n)
    if n < 100:
        tens = next(w for w, v in _TENS.items() if v == n - n % 10)
        return tens if n % 10 == 0 else f"{tens}-{_UNITS[n % 10]}"
    for scale_word, scale in (("million", 1_000_000), ("thousand", 1000), ("hundred", 100)):
        if n >= scale:
            head, rest = divmod(n, scale)
            words = f"{int_to_words(head)} {scale_word}"
            return words if rest == 0 else f"{words} {int_to_words(rest)}"
    raise AssertionError("unreachable")


def amount_to_words(amount: Decimal | str, currency: str = "CNY") -> str:
    """Say a money amount the way a person would.

    Examples:
        >>> amount_to_words(Decimal("120.50"))
        'one hundred twenty yuan and fifty fen'
        >>> amount_to_words("1.00", "USD")
        'one dollar'
        >>> amount_to_words("0.05", "USD")
        'five cents'
    """
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    sign = "minus " if value < 0 else ""
    value = abs(value)
    whole = int(value)
    cents = int((value - whole) * 100)
    code = currency.upper()
    if code in CURRENCY_WORDS:
        major, minor = CURRENCY_WORDS[code]
        if code == "USD":
            major_word = "dollar" if whole == 1 else major
            minor_word = "cent" if cents == 1 else minor
        else:
            major_word, minor_word = major, minor
        if whole and cents:
            return (
                f"{sign}{int_to_words(whole)} {major_word} and {int_to_words(cents)} {minor_word}"
            )
        if cents:
            return f"{sign}{int_to_words(cents)} {minor_word}"
        return f"{sign}{int_to_words(whole)} {major_word}"
    if cents:
        return f"{sign}{int_to_words(whole)} point {digits_to_words(f'{cents:02d}')} {code}"
    return f"{sign}{int_to_words(whole)} {code}"


def digits_to_words(digits: str) -> str:
    """Say a digit string one digit at a time ("4 7 1 9" -> "four seven one nine")."""
    return " ".join(_UNITS[int(d)] for d in digits if d.isdigit())


def _year_to_words(year: int) -> str:
    if 2000 <= year < 2010:
        return int_to_words(year)
    head, tail = divmod(year, 100)
    if tail == 0:
        return f"{int_to_words(head)} hundred"
    tail_words = int_to_words(tail) if tail >= 10 else f"oh {_UNITS[tail]}"
    return f"{int_to_words(head)} {tail_words}"


def _ordinal(n: int) -> str:
    if n in _ORDINALS:
        return _ORDINALS[n]
    tens, unit = divmod(n, 10)
    return f"{int_to_words(tens * 10)}-{_ORDINALS[unit]}"


def date_to_words(day: date, *, with_year: bool = True) -> str:
    """Say a date ("2026-03-05" -> "March fifth, twenty twenty-six")."""
    words = f"{MONTHS[day.month - 1]} {_ordinal(day.day)}"
    return f"{words}, {_year_to_words(day.year)}" if with_year else words


_AMOUNT_RE = re.compile(
    r"(?:(?P<pre>[¥$]|CNY|RMB|USD)\s?(?P<a1>\d[\d,]*(?:\.\d{1,2})?))"
    r"|(?:(?P<a2>\d[\d,]*(?:\.\d{1,2})?)\s?(?P<post>CNY|RMB|USD|yuan|元|dollars?))",
    re.I,
)
_DATE_RE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_SPACED_DIGITS_RE = re.compile(r"\b\d(?: \d){2,}\b")
_LONG_DIGITS_RE = re.compile(r"(?<!\d)\d{5,}(?!\d)")  # also inside "R2026030501"
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_INT_RE = re.compile(r"\b\d{1,4}\b")


def speakable(text: str, *, currency: str = "CNY") -> str:
    """Rewrite a reply so a synthesiser says its figures naturally.

    Amounts with a currency mark (``¥120.50``, ``120.50 CNY``, ``$5``) become
    words in the product currency's wording, ISO dates become spoken dates,
    spaced digits (challenge codes "4 7 1 9 0 2") and long numbers (account or
    receipt numbers) are read digit by digit, other decimals as "twelve point
    five" and small integers as cardinals.
    """

    def amount(m: re.Match[str]) -> str:
        raw = (m.group("a1") or m.group("a2")).replace(",", "")
        mark = (m.group("pre") or m.group("post") or "").upper()
        code = "USD" if mark in ("$", "USD", "DOLLAR", "DOLLARS") else currency
        if mark in ("¥", "CNY", "RMB", "YUAN", "元"):
            code = "CNY"
        return amount_to_words(Decimal(raw), code)

    text = _AMOUNT_RE.sub(amount, text)
    text = _DATE_RE.sub(lambda m: date_to_words(date(int(m[1]), int(m[2]), int(m[3]))), text)
    text = _SPACED_DIGITS_RE.sub(lambda m: digits_to_words(m[0]), text)
    text = _LONG_DIGITS_RE.sub(lambda m: " " + digits_to_words(m[0]), text)
    text = _DECIMAL_RE.sub(
        lambda m: f"{int_to_words(int(m[1]))} point {digits_to_words(m[2])}", text
    )
    return _INT_RE.sub(lambda m: int_to_words(int(m[0])), text)
