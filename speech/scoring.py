"""The text normaliser word error rates are scored with, the same for every recogniser.

A word error rate compares words, so both sides must be written the same way
before they are compared, or the score measures spelling conventions instead of
recognition: pocketsphinx writes "what's" and number words, which the speaker
turns into figures ("pay 150.00 yuan"), while Whisper writes "What's", "150
yuan", "$20" and "auto-pay". :func:`scoring_text` maps the reference (the written
request) and every hypothesis to one form:

* lower case; hyphens and punctuation become spaces (a decimal point between
  figures stays);
* common contractions written out ("what's" -> "what is", "don't" -> "do not");
  other apostrophes are dropped ("today's" -> "todays");
* numbers as figures (:func:`speech.numbers.normalize_transcript`): "one hundred
  fifty yuan" and "150 yuan" and "¥150" all become "150 yuan"; whole amounts lose
  ".00"; figures next to each other become one digit string ("4 7 1 9", "835 012",
  "four seven one nine": a PIN or code however it was grouped);
* a few words with two accepted spellings take one ("auto pay" -> "autopay",
  "we chat" -> "wechat", "ok" -> "okay").

Used by bench/speaker_engines.py and bench/speaker.py for both engines. It is
for scoring only: what the dialogue reads is the recogniser's own text.
"""

from __future__ import annotations

import re

from speech.numbers import normalize_transcript

#: Contractions written out before scoring (both sides).
CONTRACTIONS = {
    "what's": "what is", "that's": "that is", "it's": "it is", "there's": "there is",
    "where's": "where is", "when's": "when is", "how's": "how is", "who's": "who is",
    "here's": "here is", "let's": "let us", "i'm": "i am", "i've": "i have",
    "i'd": "i would", "i'll": "i will", "you're": "you are", "we're": "we are",
    "they're": "they are", "don't": "do not", "doesn't": "does not", "didn't": "did not",
    "isn't": "is not", "aren't": "are not", "wasn't": "was not", "haven't": "have not",
    "hasn't": "has not", "can't": "can not", "cannot": "can not", "won't": "will not",
    "shouldn't": "should not", "wouldn't": "would not", "couldn't": "could not",
}  # fmt: skip
#: Words with two accepted spellings, mapped to one (phrases first).
SPELLINGS = {
    "auto pay": "autopay", "auto payment": "autopayment", "we chat": "wechat",
    "ali pay": "alipay", "e mail": "email", "ok": "okay", "alright": "all right",
    "pin code": "pin code", "log in": "login",
}  # fmt: skip


def scoring_text(text: str) -> str:
    """``text`` in the one form both sides of a word error rate are compared in."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[¥￥]\s*(\d[\d,]*(?:\.\d+)?)", r"\1 yuan", text)  # "¥150": "150 yuan"
    text = re.sub(r"\$\s*(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    text = re.sub(r"[^\w\s.']", " ", text)
    words = []
    for word in text.split():
        word = CONTRACTIONS.get(word, word).replace("'", "")
        words.append(word)
    text = " " + " ".join(words) + " "
    for variant, canonical in SPELLINGS.items():
        text = text.replace(f" {variant} ", f" {canonical} ")
    # Figures with a decimal point would be split by the number pass: hold them aside.
    decimals: list[str] = []

    def hold(m: re.Match[str]) -> str:
        decimals.append(m.group(0))
        return " zzdecimal" + "".join(chr(97 + int(d)) for d in str(len(decimals) - 1)) + " "

    text = re.sub(r"\d+\.\d+", hold, text)
    text = normalize_transcript(text.strip())
    text = re.sub(r"zzdecimal([a-j]+)", lambda m: decimals[_index(m.group(1))], text)
    text = re.sub(r"\b(\d+)\.00\b", r"\1", text)
    # Figures next to each other are one digit string said in pieces ("4 7 1 9",
    # "835 012", "8 35 0 1 2"): a PIN or code however the recogniser grouped it.
    text = re.sub(r"(?<![\d.])\d+(?: \d+)+(?![\d.])", lambda m: m.group(0).replace(" ", ""), text)
    return " ".join(text.split())


def _index(letters: str) -> int:
    return int("".join(str(ord(c) - 97) for c in letters))


def scored_wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``, both :func:`scoring_text`."""
    from speech.recognize import word_error_rate

    return word_error_rate(scoring_text(reference), scoring_text(hypothesis))
