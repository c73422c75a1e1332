"""The channel seam holds: outside bots/channels/, no code decides anything by a channel's name.

What differs between channels is asked of the registry (bots.channels); a new channel is one
adapter module and its line in the registry. These checks read the source, so a comparison like
``channel == "sms"`` (or a template's ``ch == 'telegram'``) anywhere else fails the suite. That only
the adapters import twilio and telegram is one of the layering rules (test_layers.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bots import channels

ROOT = Path(__file__).resolve().parents[2]
NAMES = frozenset(channels.names()) | {"whatsapp"}
PACKAGES = ("bots", "storage", "webhooks", "config")
ADAPTERS = ROOT / "bots" / "channels"


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ADAPTERS in path.parents or "migrations" in path.parts:
                continue
            yield path


def _names_in(node) -> set[str]:
    """Channel names spelled as string constants in ``node`` (a constant, or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names_in(e) for e in node.elts)) if node.elts else set()
    return set()


def _conditions(tree) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                for name in _names_in(operand):
                    found.append((node.lineno, name))
        elif isinstance(node, ast.match_case):
            for sub in ast.walk(node.pattern):
                if isinstance(sub, ast.MatchValue):
                    for name in _names_in(sub.value):
                        found.append((sub.lineno, name))
        elif isinstance(node, ast.Dict):  # a lookup table keyed by channel: {"sms": ..., "telegram": ...}
            for key in node.keys:
                for name in _names_in(key) if key is not None else ():
                    found.append((key.lineno, name))
    return found


def test_no_module_outside_the_adapters_branches_on_a_channel_name():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name!r}"
                 for path in _sources() for line, name in _conditions(ast.parse(path.read_text(), str(path)))]
    assert offenders == [], "ask bots.channels instead:\n" + "\n".join(offenders)


_TEMPLATE_TEST = re.compile(r"""(==|!=|\bin)\s*\(?\s*['"](%s)['"]|['"](%s)['"]\s*(==|!=)""" % (
    "|".join(NAMES), "|".join(NAMES)))


def test_no_template_or_script_branches_on_a_channel_name():
    offenders = []
    for path in sorted([*(ROOT / "webhooks" / "templates").rglob("*.html"),
                        *(ROOT / "webhooks" / "static").rglob("*.js")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _TEMPLATE_TEST.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "use channel_label / the channel's own attributes:\n" + "\n".join(offenders)


def test_the_checks_would_catch_a_branch():
    """The guard is not vacuous: a comparison of each kind is found."""
    assert _conditions(ast.parse('if channel == "sms": pass')) == [(1, "sms")]
    assert _conditions(ast.parse('ok = ch in ("telegram", "x")')) == [(1, "telegram")]
    assert _conditions(ast.parse('rate = {"sms": 1}[ch]')) == [(1, "sms")]
    assert _conditions(ast.parse('match ch:\n    case "whatsapp": pass')) == [(2, "whatsapp")]
    assert _TEMPLATE_TEST.search("{{ 'SMS' if ch == 'sms' else 'Telegram' }}")
    assert not _TEMPLATE_TEST.search("{{ channel_label(ch) }}")
