"""Domain language models for pocketsphinx, generated from billtalk's own data.

The general en-US language model gets three words in four wrong on bill
requests; a grammar built from what residents actually say gets about nine in
ten right. This module builds, from the NLU training data (``nlu/data/**/*.yml``,
Rasa YAML with the entity annotations stripped) and the vocabulary of answers
the dialogue asks for (amounts, utilities, months, digits, yes/no):

* a trigram language model (``domain.lm``, ARPA): every training sentence,
  with amounts, readings, codes, utilities and payment methods replaced by
  sampled spoken values, so the model knows "pay one hundred twenty yuan and
  fifty fen for water" without having seen that exact sentence;
* JSGF answer grammars (``answer-*.gram``) for replies to a known prompt (an
  amount, yes/no, a utility, a month), built on compact number rules;
* a dictionary (``domain.dict``) holding only the words of these, from CMUdict
  plus :data:`~speech.sphinx.EXTRA_PRONUNCIATIONS`. Loading it takes
  milliseconds where the full CMUdict takes seconds.
* a digit grammar (``digits-N.gram``), for spoken challenges and link codes.

Artefacts are written once into ``settings.data_dir / "speech"`` under a name
that hashes their content, so new training data yields new files and old
decoders stay valid. Nothing is downloaded.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from billtalk.logs import get_logger
from billtalk.settings import PROJECT_ROOT, get_settings
from speech.numbers import MONTHS, amount_to_words, int_to_words
from speech.sphinx import EXTRA_PRONUNCIATIONS, cmudict, content_hash, write_dictionary

log = get_logger("speech.grammar")

#: Default location of the NLU training data the grammar is generated from.
NLU_DATA_DIR = PROJECT_ROOT / "nlu" / "data" / "en"

DIGIT_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Spoken names of each utility and payment method, besides those in the NLU data.
UTILITY_WORDS = (
    "electricity", "electric", "power", "water", "gas", "property fee",
    "property management fee", "management fee", "service charge", "hoa",
)  # fmt: skip
METHOD_WORDS = (
    "card", "credit card", "debit card", "bank transfer", "wallet", "alipay",
    "wechat", "wechat pay", "apple pay", "visa",
)  # fmt: skip
#: Short answers the dialogue prompts for, outside the NLU examples.
ANSWERS = (
    "yes", "no", "yes please", "no thanks", "cancel", "confirm", "stop", "okay", "help",
    "that's right", "that's wrong", "correct", "pay it", "go ahead",
)  # fmt: skip

#: The speaker's own command, which the NLU data does not hold: removing a speaker
#: ("remove the kitchen speaker", bot/channels/speaker/chat_commands.py accepts these
#: verbs before "[the|my|our|this] [name] speaker"). Generated from that rule.
SPEAKER_COMMAND_VERBS = ("remove", "unpair", "forget", "disconnect", "unlink", "delete")
SPEAKER_NAMES = ("", "kitchen", "living room", "bedroom", "smart")


def speaker_commands() -> list[list[str]]:
    """Sentences of the speaker-removal command, for the domain LM."""
    return [
        [verb, *([det] if det else []), *name.split(), "speaker"]
        for verb in SPEAKER_COMMAND_VERBS
        for det in ("", "the", "my", "our", "this")
        for name in SPEAKER_NAMES
    ]


_SLOT_OF_ENTITY = {
    "amount": "<amount>",
    "meter_reading": "<number>",
    "link_code": "<digits>",
    "utility": "<utility>",
    "payment_method": "<method>",
}
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+?)\](?:\((?P<entity>[^:)]+?)(?::[^)]+)?\)|\{(?P<dict>[^}]+?)\})"
)
_ENTITY_IN_DICT = re.compile(r'"entity"\s*:\s*"(?P<entity>[^"]+)"')

# pocketsphinx copies a rule's graph at every reference, so the rules are
# factored to reference each sub-rule as few times as possible (a first, naive
# cardinal grammar decoded at several times real time), and use single <NULL>
# arcs instead of nested optional items, whose null-transition closure is costly.
_NUMBER_RULES = """\
<d1> = one | two | three | four | five | six | seven | eight | nine;
<d0> = zero | oh | <d1>;
<below100> = <d1> | ten | eleven | twelve | thirteen | fourteen | fifteen | sixteen
           | seventeen | eighteen | nineteen
           | (twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety) (<d1> | <NULL>);
<and> = and | <NULL>;
<hundreds> = (<d1> | a) hundred;
<below1000> = <below100> | <hundreds> (<NULL> | <and> <below100>);
<number> = <below1000> | (<below100> | a) thousand (<NULL> | <and> <below1000>);
<currency> = yuan | dollars | kuai | rmb | bucks;
<cents> = <below100> (fen | cents);
<amount> = <cents> | <number> (<NULL> | <currency> (<NULL> | <and> <cents>)
                               | point <d0> (<NULL> | <d0>));
<digits> = <d0> <d0> <d0> <d0>+;
<month> = {months};
"""


#: Bumped when the LM recipe (slot copies, discount) changes, to rebuild artefacts.
_LM_VERSION = "lm2: copies=20 discount=0.7 uniform=0.1"

#: Answer grammars: what the dialogue may constrain a reply to when it knows what
#: it asked ("How much do you want to pay?" -> ``"amount"``).
ANSWER_GRAMMARS: dict[str, str] = {
    "amount": "<amount> | pay <amount> | <amount> please | pay <amount> please | cancel",
    "yes_no": " | ".join(ANSWERS),
    "utility": "<utility> | the <utility> bill | <utility> bill | all of them | everything",
    "month": "<month> | last month | this month | <month> bill",
}


@dataclass(frozen=True)
class DomainModel:
    """Paths of the generated domain artefacts.

    Attributes:
        lm: The ARPA trigram language model of resident requests.
        dictionary: The trimmed pronunciation dictionary (LM and answer grammars).
        answers: JSGF answer grammar per name in :data:`ANSWER_GRAMMARS`.
        sentences: Number of distinct training sentences (with slots) used.
        dropped: Sentences left out because a word has no pronunciation
            (mostly typos in the NLU data, e.g. "pymnt").
    """

    lm: Path
    dictionary: Path
    answers: dict[str, Path]
    sentences: int
    dropped: int


def speech_dir() -> Path:
    """Folder of generated speech artefacts (``settings.data_dir / "speech"``)."""
    path = get_settings().data_dir / "speech"
    path.mkdir(parents=True, exist_ok=True)
    return path


def digit_grammar(expected_len: int | None = None) -> tuple[Path, Path]:
    """Write (once) the grammar and dictionary for spoken digit strings.

    Args:
        expected_len: Exact number of digits, or None for one to twelve digits.
            Fixing the count measured to help a lot on real voices.

    Returns:
        ``(grammar_path, dictionary_path)``.
    """
    if expected_len is not None and not 1 <= expected_len <= 16:
        raise ValueError("expected_len must be between 1 and 16")
    body = " ".join(["<d>"] * expected_len) if expected_len else "<d>+"
    text = (
        "#JSGF V1.0;\ngrammar digits;\n"
        f"<d> = {' | '.join(DIGIT_WORDS)};\npublic <digits> = {body};\n"
    )
    out = speech_dir()
    gram = out / f"digits-{expected_len or 'any'}.gram"
    dic = out / "digits.dict"
    if not gram.exists() or gram.read_text() != text:
        gram.write_text(text)
    if not dic.exists():
        write_dictionary(set(DIGIT_WORDS), dic)
    return gram, dic


def read_nlu_sentences(paths: Iterable[Path] | None = None) -> list[list[str]]:
    """Read Rasa NLU YAML examples as token lists with entity slots.

    Annotated amounts, readings and codes become ``<amount>``, ``<number>`` and
    ``<digits>``; utilities and payment methods become ``<utility>`` and
    ``<method>``; figures elsewhere are spelled out; other annotations keep
    their text. Files that are not valid YAML are skipped with a warning.
    """
    files: list[Path] = []
    for p in paths if paths is not None else [NLU_DATA_DIR]:
        p = Path(p)
        files.extend(sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    sentences: list[list[str]] = []
    for file in files:
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            log.warning("speech_nlu_data_skipped", file=str(file), error=str(exc))
            continue
        for block in doc.get("nlu", []) or []:
            if not isinstance(block, dict) or "intent" not in block:
                continue
            examples = block.get("examples", "")
            lines: list[str] = []
            if isinstance(examples, str):
                lines = [ln.strip()[2:] for ln in examples.splitlines() if ln.strip()[:2] == "- "]
            elif isinstance(examples, list):
                lines = [e["text"] if isinstance(e, dict) else str(e) for e in examples]
            for line in lines:
                tokens = example_tokens(line)
                if tokens:
                    sentences.append(tokens)
    return sentences


#: Typed spellings that are one spoken word: the language model keeps one of them, the
#: one Whisper and the scoring use (the NLU data has "whats" beside "what's").
SPOKEN_SPELLINGS = {
    "whats": "what's", "thats": "that's", "dont": "don't", "im": "i'm", "ive": "i've",
    "cant": "can't", "didnt": "didn't", "doesnt": "doesn't", "isnt": "isn't",
    "wheres": "where's", "whens": "when's", "hows": "how's", "theres": "there's",
}  # fmt: skip


def example_tokens(example: str) -> list[str]:
    """Turn one annotated example into spoken tokens with slots.

    >>> example_tokens('pay [150]{"entity": "amount", "value": "150.00"} for [water](utility)')
    ['pay', '<amount>', 'for', '<utility>']
    """

    def replace(m: re.Match[str]) -> str:
        entity = m.group("entity")
        if entity is None:
            found = _ENTITY_IN_DICT.search(m.group("dict") or "")
            entity = found.group("entity") if found else ""
        slot = _SLOT_OF_ENTITY.get(entity)
        return f" {slot} " if slot else m.group("text")

    text = _ANNOTATION.sub(replace, example).lower()
    if re.search(r"[^\x00-\x7f]", text):
        return []  # Chinese examples: the en-US acoustic model cannot say them
    text = re.sub(r"(\d+)(st|nd|rd|th)\b", lambda m: _ordinal_word(int(m[1])), text)
    text = re.sub(r"\d[\d,]*(?:\.\d+)?", lambda m: _say_figure(m[0]), text)
    text = text.replace("&", " and ").replace("%", " percent")
    tokens = re.findall(r"<[a-z]+>|[a-z]+(?:'[a-z]+)?", text)
    return [SPOKEN_SPELLINGS.get(t, t) for t in tokens]


def _ordinal_word(n: int) -> str:
    from speech.numbers import _ordinal

    return _ordinal(n) if 0 < n < 40 else int_to_words(n)


def _say_figure(fig: str) -> str:
    clean = fig.replace(",", "")
    if "." in clean:
        whole, frac = clean.split(".", 1)
        return (
            f"{int_to_words(int(whole or 0))} point {' '.join(int_to_words(int(d)) for d in frac)}"
        )
    return (
        int_to_words(int(clean))
        if len(clean) < 5
        else " ".join(int_to_words(int(d)) for d in clean)
    )


_model_cache: dict[tuple[tuple[str, int, int], ...], DomainModel] = {}


def domain_model() -> DomainModel:
    """The domain model for the default NLU data, rebuilt only when those files change.

    Parsing the YAML and hashing costs a few hundred milliseconds, more than a
    decode, so the result is cached per process, keyed by the files' sizes and
    modification times.
    """
    files = sorted(NLU_DATA_DIR.rglob("*.yml")) if NLU_DATA_DIR.is_dir() else []
    key = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    model = _model_cache.get(key)
    if model is None or not model.lm.exists():
        model = build_domain_model()
        _model_cache.clear()
        _model_cache[key] = model
    return model


def build_domain_model(
    nlu_paths: Iterable[Path] | None = None, *, force: bool = False
) -> DomainModel:
    """Generate (or reuse) the domain language model, answer grammars and dictionary.

    Args:
        nlu_paths: NLU YAML files or folders; defaults to :data:`NLU_DATA_DIR`.
        force: Rebuild even if artefacts with the same content hash exist.

    Returns:
        The :class:`DomainModel` with the artefact paths.
    """
    sentences = read_nlu_sentences(nlu_paths)
    sentences += [a.split() for a in ANSWERS]
    sentences += speaker_commands()
    sentences += [["<amount>"], ["<digits>"], ["<utility>"], ["<method>"], ["<month>"],
                  ["<number>"], ["<month>", "<utility>", "bill"]]  # fmt: skip
    known = set(cmudict()) | set(EXTRA_PRONUNCIATIONS)
    unique: dict[tuple[str, ...], None] = {}
    dropped = 0
    for tokens in sentences:
        if all(t.startswith("<") or t in known for t in tokens):
            unique[tuple(tokens)] = None
        else:
            dropped += 1
    kept = [list(s) for s in unique]
    key = content_hash(
        *(" ".join(s) for s in kept), _rules_text(), *UTILITY_WORDS, *METHOD_WORDS,
        *ANSWER_GRAMMARS.values(), _LM_VERSION,
    )  # fmt: skip
    out = speech_dir() / f"domain-{key}"
    model = DomainModel(
        lm=out / "domain.lm",
        dictionary=out / "domain.dict",
        answers={name: out / f"answer-{name}.gram" for name in ANSWER_GRAMMARS},
        sentences=len(kept),
        dropped=dropped,
    )
    files = [model.lm, model.dictionary, *model.answers.values()]
    if not force and all(f.exists() for f in files):
        return model
    out.mkdir(parents=True, exist_ok=True)
    lm_sentences = _expand(kept)
    vocab = {w for s in lm_sentences for w in s} | set(re.findall(r"\b[a-z']+\b", _rules_text()))
    vocab |= {w for body in ANSWER_GRAMMARS.values() for w in re.findall(r"\b[a-z']+\b", body)}
    vocab |= {w for words in (*UTILITY_WORDS, *METHOD_WORDS) for w in words.split()}
    missing = write_dictionary(vocab, model.dictionary)
    if missing:
        log.warning("speech_words_without_pronunciation", words=missing[:20])
    lm_sentences = [s for s in lm_sentences if not set(s) & set(missing)]
    model.lm.write_text(arpa_trigram(lm_sentences), encoding="utf-8")
    for name, body in ANSWER_GRAMMARS.items():
        model.answers[name].write_text(_jsgf(name, body), encoding="utf-8")
    log.info("speech_domain_model_built", sentences=len(kept), dropped=dropped, path=str(out))
    return model


def _rules_text() -> str:
    return _NUMBER_RULES.format(months=" | ".join(m.lower() for m in MONTHS))


def _jsgf(name: str, body: str) -> str:
    return (
        f"#JSGF V1.0;\ngrammar {name};\n"
        + _rules_text()
        + f"<utility> = {' | '.join(UTILITY_WORDS)};\n"
        + f"<method> = {' | '.join(METHOD_WORDS)};\n"
        + f"public <answer> = {body};\n"
    )


def _sample_amount(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        value = rng.choice([20, 45, 50, 60, 75, 80, 100, 120, 150, 200, 250, 300, 500, 1000, 1250])
        return int_to_words(value) + rng.choice(["", " yuan", " dollars", " kuai"])
    if kind < 0.55:
        cents = rng.choice([5, 10, 25, 30, 50, 75, 99])
        whole = rng.randint(1, 999)
        return amount_to_words(f"{whole}.{cents:02d}", rng.choice(["CNY", "USD"]))
    if kind < 0.7:
        return rng.choice(
            ["a hundred", "a thousand", "one hundred and fifty", "two hundred and ten"]
        )
    return int_to_words(rng.randint(1, 3000))


def _fill(tokens: list[str], rng: random.Random) -> list[str]:
    out: list[str] = []
    for t in tokens:
        if t == "<amount>":
            out += _sample_amount(rng).replace("-", " ").split()
        elif t == "<number>":
            out += int_to_words(rng.randint(1, 99999)).replace("-", " ").split()
        elif t == "<digits>":
            out += [rng.choice((*DIGIT_WORDS[2:], "zero")) for _ in range(rng.choice([4, 6, 8]))]
        elif t == "<utility>":
            out += rng.choice(UTILITY_WORDS).split()
        elif t == "<method>":
            out += rng.choice(METHOD_WORDS).split()
        elif t == "<month>":
            out.append(rng.choice(MONTHS).lower())
        else:
            out.append(t)
    return out


def _expand(sentences: list[list[str]], copies: int = 20, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    out: list[list[str]] = []
    for s in sentences:
        n = copies if any(t.startswith("<") for t in s) else 1
        out += [_fill(s, rng) for _ in range(n)]
    return out


def arpa_trigram(sentences: list[list[str]], discount: float = 0.7, uniform: float = 0.1) -> str:
    """A trigram language model in ARPA format, with interpolated absolute discounting.

    Probabilities are interpolated with the lower order and written as backoff
    weights, so the file follows the standard ARPA semantics pocketsphinx reads.
    Sentences get ``<s>``/``</s>`` boundaries.
    """
    counts: list[Counter[tuple[str, ...]]] = [Counter(), Counter(), Counter()]
    for s in sentences:
        words = ["<s>", *s, "</s>"]
        for n in (1, 2, 3):
            for i in range(len(words) - n + 1):
                gram = tuple(words[i : i + n])
                if n == 1 and gram == ("<s>",):
                    continue
                counts[n - 1][gram] += 1
    vocab = sorted({g[0] for g in counts[0]} | {"<s>"})
    total = sum(counts[0].values())
    probs: list[dict[tuple[str, ...], float]] = [{}, {}, {}]
    uni_floor = 1.0 / (len(vocab) - 1)  # <s> is never predicted
    for w in vocab:
        c = counts[0].get((w,), 0)
        probs[0][(w,)] = (1 - uniform) * c / total + uniform * uni_floor if w != "<s>" else 0.0
    for n in (2, 3):
        ctx_total: dict[tuple[str, ...], int] = defaultdict(int)
        ctx_types: dict[tuple[str, ...], int] = defaultdict(int)
        for gram, c in counts[n - 1].items():
            ctx_total[gram[:-1]] += c
            ctx_types[gram[:-1]] += 1
        for gram, c in counts[n - 1].items():
            ctx = gram[:-1]
            lam = discount * ctx_types[ctx] / ctx_total[ctx]
            lower = _prob(probs, gram[1:])
            probs[n - 1][gram] = max(c - discount, 0) / ctx_total[ctx] + lam * lower
    backoff: list[dict[tuple[str, ...], float]] = [{}, {}]
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for n in (2, 3):
        for gram in probs[n - 1]:
            children[gram[:-1]].append(gram)
    for n in (1, 2):
        for ctx in probs[n - 1]:
            kids = children.get(ctx)
            if not kids:
                continue
            seen = sum(probs[n][k] for k in kids)
            seen_lower = sum(_prob(probs, k[1:]) for k in kids)
            num, den = max(1.0 - seen, 1e-12), max(1.0 - seen_lower, 1e-12)
            backoff[n - 1][ctx] = num / den

    def log10(p: float) -> float:
        return math.log10(p) if p > 0 else -99.0

    lines = ["\\data\\"] + [f"ngram {n}={len(probs[n - 1])}" for n in (1, 2, 3)] + [""]
    for n in (1, 2, 3):
        lines.append(f"\\{n}-grams:")
        for gram in sorted(probs[n - 1]):
            line = f"{log10(probs[n - 1][gram]):.4f}\t{' '.join(gram)}"
            if n < 3 and gram in backoff[n - 1]:
                line += f"\t{log10(backoff[n - 1][gram]):.4f}"
            lines.append(line)
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n"


def _prob(probs: list[dict[tuple[str, ...], float]], gram: tuple[str, ...]) -> float:
    """Probability of ``gram`` with backoff to lower orders (used while building)."""
    n = len(gram)
    if gram in probs[n - 1]:
        return probs[n - 1][gram]
    if n == 1:
        return 1e-7
    return _prob(probs, gram[1:])
