"""Staff logins in tests: argon2's cheapest parameters (the real ones take ~0.3 s a hash on this
machine; tests/unit/test_staff_units.py checks the production parameters)."""

from __future__ import annotations


def cheap_password_hashing(monkeypatch) -> None:
    from argon2 import PasswordHasher, profiles

    from bots import staff_accounts

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    monkeypatch.setattr(staff_accounts, "_hasher", lambda: cheap)
    monkeypatch.setattr(staff_accounts, "_dummy_hash", lambda: cheap.hash("not a password"))
