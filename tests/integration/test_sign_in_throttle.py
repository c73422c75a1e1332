"""Sign-in throttling that an attacker cannot turn against the owner: failures count per account and
address together; addresses the account never signed in from are slowed down once the account is
under attack, while the owner's known address keeps working; and the limits hold exactly when many
guesses arrive at once, on both databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bots import staff_accounts as svc
from tests.support.staff import cheap_password_hashing

EMAIL = "organizer@example.org"
PASSWORD = "correct horse battery staple"
HOME = "192.0.2.10"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def owner(rt):
    svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    assert svc.sign_in(rt.db, EMAIL, PASSWORD, HOME, rt.now()).staff is not None  # HOME is a known address
    rt.clock.advance(seconds=1)
    return EMAIL


def test_guesses_from_many_addresses_do_not_lock_the_owner_out_of_a_known_address(rt, clock, owner):
    for i in range(40):  # one guess every three minutes would have kept the owner out for good
        svc.sign_in(rt.db, EMAIL, f"guess {i}", f"203.0.113.{i}", rt.now())
        clock.advance(seconds=30)
    assert svc.sign_in(rt.db, EMAIL, PASSWORD, HOME, rt.now()).staff is not None


def test_unknown_addresses_are_slowed_down_not_locked_for_fifteen_minutes(rt, clock, owner):
    for i in range(svc.ACCOUNT_FAILURE_LIMIT):
        assert not svc.sign_in(rt.db, EMAIL, "wrong guess", f"203.0.113.{i}", rt.now()).throttled
    result = svc.sign_in(rt.db, EMAIL, PASSWORD, "198.51.100.7", rt.now())  # the owner, from a new address
    assert result.throttled and result.retry_after <= svc.UNKNOWN_ADDRESS_SPACING.total_seconds()
    clock.advance(seconds=result.retry_after)
    assert svc.sign_in(rt.db, EMAIL, PASSWORD, "198.51.100.7", rt.now()).staff is not None


def test_one_address_is_limited_per_account(rt, clock, owner):
    for _ in range(svc.ACCOUNT_FAILURE_LIMIT):
        assert not svc.sign_in(rt.db, EMAIL, "wrong guess", HOME, rt.now()).throttled
    result = svc.sign_in(rt.db, EMAIL, PASSWORD, HOME, rt.now())
    assert result.throttled and result.retry_after > 60  # the window, for this account at this address
    clock.advance(seconds=result.retry_after)
    assert svc.sign_in(rt.db, EMAIL, PASSWORD, HOME, rt.now()).staff is not None


def _parallel_guesses(rt, monkeypatch, addresses) -> int:
    checked = []
    lock = threading.Lock()
    verify = svc._verify

    def counting(password_hash, password):
        with lock:
            checked.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(svc, "_verify", counting)
    barrier = threading.Barrier(len(addresses))

    def guess(i_ip):
        i, ip = i_ip
        barrier.wait()
        return svc.sign_in(rt.db, EMAIL, f"guess {i}", ip, rt.now())

    with ThreadPoolExecutor(len(addresses)) as pool:
        results = list(pool.map(guess, enumerate(addresses)))
    assert sum(not r.throttled for r in results) == len(checked)
    return len(checked)


def test_forty_parallel_guesses_from_one_address_check_exactly_the_limit(rt, monkeypatch, owner):
    assert _parallel_guesses(rt, monkeypatch, ["203.0.113.9"] * 40) == svc.ACCOUNT_FAILURE_LIMIT


def test_forty_parallel_guesses_from_forty_addresses_check_exactly_the_limit(rt, monkeypatch, owner):
    addresses = [f"203.0.113.{i}" for i in range(40)]
    assert _parallel_guesses(rt, monkeypatch, addresses) == svc.ACCOUNT_FAILURE_LIMIT
