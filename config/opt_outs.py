"""Opt-outs in plain words ("please stop texting me", "bórrenme de la lista"): the phrase file
(``opt_outs.toml``), checked when it is loaded, and the one matcher the engine and the inbound limit
use. The file explains its own syntax to the translator who edits it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from config.keywords import OPT_OUT, SPOKEN_IN, fold

MAX_VARIANTS = 1000  # one phrase's spellings once a/b and [..] are expanded: a typo, not a phrase, beyond
MAX_CHARS = 64  # the consent log keeps the matched phrase as the cause (64 characters)

# Punctuation that ends a sentence or a clause: a negation does not reach across it ("No, stop ...").
_CLAUSE = re.compile(r"[.,;:!?¡¿()\[\]{}\"«»“”\n\r]+")
_APOSTROPHES = dict.fromkeys(map(ord, "'’ʼ`´"))
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[list[str]]:
    """``text`` as clauses of folded words: "Don't STOP, por favor!" -> [["DONT", "STOP"], ["POR", "FAVOR"]]."""
    out = []
    for clause in _CLAUSE.split(text):
        found = _WORD.findall(fold(clause).translate(_APOSTROPHES))
        if found:
            out.append(found)
    return out


@dataclass(frozen=True)
class OptOutMatch:
    phrase: str  # the phrase as matched, folded ("STOP TEXTING ME"): the consent log's cause
    language: str | None  # the language of the phrase (None: an opt-out keyword everyone uses)


class PhraseError(ValueError):
    pass


def expand(phrase: str) -> list[str]:
    """Every spelling of a phrase as folded words: "stop texting/messaging [me]" -> 4 spellings.
    Raises PhraseError (in words a translator can act on) for a phrase that cannot be read."""
    slots: list[list[tuple[str, ...]]] = []  # each slot: its alternatives, each a run of words
    group: list[list[tuple[str, ...]]] | None = None
    for piece in phrase.split():
        opens, closes = piece.startswith("["), piece.endswith("]")
        piece = piece.strip("[]")
        if "[" in piece or "]" in piece or (opens and group is not None) or (closes and group is None and not opens):
            raise PhraseError("brackets do not pair up (use [words] for words that may be left out, not nested)")
        alternatives = []
        for alt in piece.split("/"):
            run = tuple(w for clause in words(alt) for w in clause)
            if not run:
                raise PhraseError(f"'{piece}' has an empty choice (write a/b, with a word on each side of /)")
            alternatives.append(run)
        if opens:
            group = []
        (group if group is not None else slots).append(alternatives)
        if closes:
            if group is None:
                raise PhraseError("brackets do not pair up")
            slots.append(_optional(group))
            group = None
    if group is not None:
        raise PhraseError("a [ is not closed by ]")
    count = 1
    for slot in slots:
        count *= len(slot)
    if count > MAX_VARIANTS:
        raise PhraseError(f"it has {count} spellings once expanded; split it into shorter phrases")
    return sorted({" ".join(w for run in choice for w in run) for choice in itertools.product(*slots)} - {""})


def _optional(group: list[list[tuple[str, ...]]]) -> list[tuple[str, ...]]:
    """A [bracketed] run of slots as one slot: every spelling of the run, or nothing."""
    return [()] + [tuple(w for run in choice for w in run) for choice in itertools.product(*group)]


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    language: str
    negations: tuple[tuple[str, ...], ...]  # () when the phrase starts with a negation ("no mas mensajes")


_END = ""  # the key, in a node of the phrase tree, of the phrase that ends there (no word is empty)


@dataclass(frozen=True)
class OptOutPhrases:
    tree: Mapping = field(default_factory=dict)  # word -> word -> ... -> {_END: _Phrase}
    whole: Mapping[str, str] = field(default_factory=dict)  # a whole message -> its language
    ignore: frozenset[tuple[str, ...]] = frozenset()
    longest_ignore: int = 0
    count: int = field(default=0, compare=False)  # spellings, all languages

    def match(self, text: str) -> OptOutMatch | None:
        """The opt-out ``text`` makes in plain words, or None. Checked on every inbound message, so the
        phrases are a tree of words: each word of the message costs a dictionary lookup or a few."""
        if not text:
            return None
        clauses = [self._kept(c) for c in words(text)]
        everything = [w for c in clauses for w in c]
        if not everything:
            return None
        whole = " ".join(everything)
        if all(w in OPT_OUT for w in everything):  # "stop please", "PARAR POR FAVOR", "stop stop"
            return OptOutMatch(whole, next((SPOKEN_IN[w] for w in everything if w in SPOKEN_IN), None))
        if whole in self.whole:
            return OptOutMatch(whole, self.whole[whole])
        for clause in clauses:
            for i in range(len(clause)):
                node = self.tree
                for word in clause[i:]:
                    node = node.get(word)
                    if node is None:
                        break
                    phrase = node.get(_END)
                    if phrase is not None and not any(
                            i >= len(neg) and tuple(clause[i - len(neg):i]) == neg for neg in phrase.negations):
                        return OptOutMatch(" ".join(phrase.words), phrase.language)
        return None

    def _kept(self, clause: list[str]) -> list[str]:
        return _without(clause, self.ignore, self.longest_ignore)


def _without(clause: list[str], ignore: frozenset[tuple[str, ...]], longest: int) -> list[str]:
    """A clause without its ignored words ("please", "por favor")."""
    if not ignore:
        return clause
    kept, i = [], 0
    while i < len(clause):
        n = next((n for n in range(min(longest, len(clause) - i), 0, -1) if tuple(clause[i:i + n]) in ignore), 0)
        if n:
            i += n
        else:
            kept.append(clause[i])
            i += 1
    return kept


def parse_opt_outs(data: dict, languages: tuple[str, ...]) -> tuple[OptOutPhrases, list[str]]:
    """The phrase file's tables -> (the matcher, the problems found, in a translator's words)."""
    problems: list[str] = []
    ignore: set[tuple[str, ...]] = set()
    tables = {}
    for lang in data:
        if lang not in languages:
            problems.append(f"[{lang}] is not a language firma speaks (use {', '.join(f'[{x}]' for x in languages)})")
    for lang in languages:
        table = data.get(lang)
        if not isinstance(table, dict):
            problems.append(f"the [{lang}] table is missing")
            continue
        for key in table:
            if key not in ("phrases", "whole", "ignore", "negations"):
                problems.append(f"[{lang}]: '{key}' is not known (use phrases, whole, ignore, negations)")
        lists = {}
        for key in ("phrases", "whole", "ignore", "negations"):
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                problems.append(f"[{lang}]: '{key}' must be a list of phrases in quotes, like [\"stop texting me\"]")
                value = []
            lists[key] = value
        for text in lists["ignore"]:
            ignore.add(tuple(w for c in words(text) for w in c))
        tables[lang] = lists
    ignore.discard(())
    ignored = frozenset(ignore)
    longest = max((len(t) for t in ignored), default=0)

    def spellings(lang: str, key: str, minimum: int) -> set[str]:
        """The phrases of one list, expanded, as a message is matched: folded, without ignored words."""
        found: set[str] = set()
        for text in tables[lang][key]:
            try:
                variants = expand(text)
            except PhraseError as exc:
                problems.append(f"[{lang}] {key}: \"{text}\": {exc}")
                continue
            for v in variants:
                kept = " ".join(_without(v.split(), ignored, longest))
                if not kept:
                    problems.append(f"[{lang}] {key}: \"{text}\" is made only of ignored words ({v})")
                elif len(kept.split()) < minimum:
                    problems.append(f"[{lang}] {key}: \"{text}\" can be the single word {kept}; a phrase needs two "
                                    f"words or more (single words are keywords, and match only a whole message)")
                elif len(kept) > MAX_CHARS:
                    problems.append(f"[{lang}] {key}: \"{text}\" is longer than {MAX_CHARS} characters as {kept}")
                else:
                    found.add(kept)
        return found

    tree: dict = {}
    whole: dict[str, str] = {}
    count = 0
    for lang, lists in tables.items():
        phrases, wholes = spellings(lang, "phrases", 2), spellings(lang, "whole", 1)
        negations = tuple(t for t in (tuple(w for c in words(n) for w in c) for n in lists["negations"]) if t)
        for p in sorted(phrases):
            run = tuple(p.split())
            node = tree
            for word in run:
                node = node.setdefault(word, {})
            negated = () if any(run[:len(n)] == n for n in negations) else negations
            node.setdefault(_END, _Phrase(run, lang, negated))
        for p in wholes:
            whole.setdefault(p, lang)
        count += len(phrases) + len(wholes)
    return OptOutPhrases(tree, MappingProxyType(whole), ignored, longest, count), problems
