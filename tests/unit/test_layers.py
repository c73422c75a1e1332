"""The rooms import one way (docs/architecture.md): webhooks -> bots -> storage -> config, and
nothing imports webhooks. bots/ is tested with plain function calls because it has no Flask or
SQLAlchemy in it; only its channel adapters (bots/channels/) speak to twilio and telegram.

The check reads the source, so an import that breaks a rule fails the suite wherever it is: at the
top of a module, inside a function, or under ``if TYPE_CHECKING:`` (a type hint naming a
SQLAlchemy class in bots/ is the same dependency, only unchecked).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bots", "storage", "webhooks", "config")
WEB = {"flask", "werkzeug", "jinja2"}
PROVIDERS = {"twilio", "telegram"}

# Where (the longest folder that matches wins) -> the top-level packages it must not import.
FORBIDDEN: dict[str, set[str]] = {
    "webhooks": PROVIDERS,  # the adapters parse the providers' payloads, not the blueprints
    "bots": WEB | {"sqlalchemy", "webhooks"} | PROVIDERS,
    "bots/channels": WEB | {"sqlalchemy", "webhooks"},
    "storage": WEB | {"webhooks", "bots"} | PROVIDERS,
    "config": WEB | {"sqlalchemy", "webhooks", "bots", "storage"} | PROVIDERS,
}


def imports(tree: ast.AST, path: str) -> list[tuple[int, str]]:
    """(line, module) for every import in ``tree``, the module of the source file at ``path``
    (relative to the root, e.g. "bots/catalog.py"); relative imports made absolute."""
    package = Path(path).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
    return found


def rule_for(path: str) -> tuple[str, set[str]]:
    """The folder whose rule applies to ``path``, and what it forbids."""
    folder = max((f for f in FORBIDDEN if path.startswith(f + "/")), key=len)
    return folder, FORBIDDEN[folder]


def broken(path: str, module: str) -> bool:
    return module.split(".")[0] in rule_for(path)[1]


def sources() -> list[str]:
    return [str(p.relative_to(ROOT)) for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def offenders() -> list[str]:
    found = []
    for path in sources():
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), path)
        found += [f"{path}:{line}: {module} ({rule_for(path)[0]}/ may not import {module.split('.')[0]})"
                  for line, module in imports(tree, path) if broken(path, module)]
    return found


def wrong_imports(source: str, path: str) -> list[str]:
    """The modules imported by ``source``, as if it were the file at ``path``, that break its rule."""
    return [module for _, module in imports(ast.parse(source), path) if broken(path, module)]


def test_each_room_imports_only_the_rooms_below_it():
    found = offenders()
    assert found == [], "\n".join(found)


def test_the_check_would_catch_a_wrong_import():
    """Not vacuous: it reads every module, and finds each kind of import that breaks a rule."""
    assert {"bots/catalog.py", "bots/channels/sms.py", "storage/uow.py", "config/redaction.py",
            "webhooks/cli.py"} <= set(sources())
    assert wrong_imports("from sqlalchemy.exc import IntegrityError", "bots/broadcasts.py") == ["sqlalchemy.exc"]
    assert wrong_imports("def f():\n    import flask", "bots/worker/loop.py") == ["flask"]
    assert wrong_imports("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy.orm import Session",
                         "bots/audit.py") == ["sqlalchemy.orm"]
    assert wrong_imports("import twilio.rest, json", "storage/db.py") == ["twilio.rest"]
    assert wrong_imports("from sqlalchemy.engine import make_url", "config/redaction.py") == ["sqlalchemy.engine"]
    assert wrong_imports("from webhooks import create_app", "bots/service.py") == ["webhooks"]
    assert wrong_imports("from sqlalchemy import select", "bots/channels/sms.py") == ["sqlalchemy"]
    # what a room may import
    assert wrong_imports("from telegram import Bot\nimport twilio", "bots/channels/telegram/gateway.py") == []
    assert wrong_imports("from storage.uow import Database\nfrom config import settings", "bots/catalog.py") == []
    assert wrong_imports("from flask import Flask\nfrom sqlalchemy.exc import DBAPIError", "webhooks/__init__.py") == []
    # a relative import stays in its room: named in full, it is judged as any other
    assert imports(ast.parse("from ..db import make_engine\nfrom . import sql"), "storage/inbound/transaction.py") == \
        [(1, "storage.db"), (2, "storage.inbound")]
