"""Staff console pieces without a database: chart geometry, phone/Telegram id parsing, password rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bots import channels
from bots import staff_accounts as svc
from webhooks import charts


@pytest.mark.parametrize("value,expected", [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20),
                                            (999, 1000), (1_000_000, 1_000_000), (1_000_001, 2_000_000)])
def test_nice_max(value, expected):
    assert charts.nice_max(value) == expected


def test_ranked_bars_read_well_at_zero_one_and_a_million():
    assert [b.pct for b in charts.ranked_bars([("sms", 0), ("telegram", 0)])] == [0, 0]
    assert [(b.pct, b.text) for b in charts.ranked_bars([("IL", 1)])] == [(100, "1")]
    bars = charts.ranked_bars([("IL", 1_000_000), ("TX", 500_000), ("WY", 1), ("VT", 0)])
    assert [b.text for b in bars] == ["1,000,000", "500,000", "1", "0"]
    assert bars[0].pct == 100 and bars[1].pct == 50
    assert bars[2].pct == charts.MIN_VISIBLE_PCT  # one signer among a million still shows
    assert bars[3].pct == 0


def test_day_chart_geometry():
    start = date(2026, 11, 1)
    days = [(start + timedelta(days=i), n) for i, n in enumerate([0] * 28 + [1, 0])]
    chart = charts.day_chart(days)
    assert chart.scale_max == 1 and chart.ticks == ["1", "", "0"]
    assert chart.bars[28].height == 100 and chart.bars[28].y == 0
    assert all(b.height == 0 for i, b in enumerate(chart.bars) if i != 28)
    assert chart.summary == "1 signature from Nov 1 to Nov 30; the busiest day was Nov 29 with 1."
    assert chart.width == 300 and all(0 <= b.x < chart.width for b in chart.bars)

    big = charts.day_chart([(start, 1_000_000), (start + timedelta(days=1), 1)])
    assert big.ticks == ["1,000,000", "500,000", "0"]
    assert big.bars[0].height == 100 and 0 < big.bars[1].height < 1
    assert big.summary == "1,000,001 signatures from Nov 1 to Nov 2; the busiest day was Nov 1 with 1,000,000."

    empty = charts.day_chart([(start + timedelta(days=i), 0) for i in range(30)])
    assert empty.peak is None and empty.summary.startswith("No signatures from Nov 1")


@pytest.mark.parametrize("typed,expected", [
    ("+13125550101", [("sms", "+13125550101"), ("whatsapp", "+13125550101")]),
    ("(312) 555-0101", [("sms", "+13125550101"), ("whatsapp", "+13125550101")]),
    ("312.555.0101", [("sms", "+13125550101"), ("whatsapp", "+13125550101")]),
    ("3125550101", [("sms", "+13125550101"), ("whatsapp", "+13125550101"), ("telegram", "3125550101")]),
    ("13125550101", [("sms", "+13125550101"), ("whatsapp", "+13125550101"), ("telegram", "13125550101")]),
    ("+52 55 1234 5678", [("sms", "+525512345678"), ("whatsapp", "+525512345678")]),
    ("whatsapp:+13125550101", [("sms", "+13125550101"), ("whatsapp", "+13125550101")]),
    ("123456", [("telegram", "123456")]),
    ("sim:+15551234567", [("sms", "sim:+15551234567"), ("whatsapp", "sim:+15551234567"),
                          ("telegram", "sim:+15551234567")]),
    ("", []), ("hello", []), ("x" * 100, []), ("+0123", []),
])
def test_address_candidates(typed, expected):
    assert channels.contact_candidates(typed) == expected


@pytest.mark.parametrize("email", ["", "nobody", "a@b", "a b@example.org", "x" * 250 + "@example.org"])
def test_bad_emails(email):
    with pytest.raises(svc.StaffError):
        svc.normalize_email(email)


@pytest.mark.parametrize("password", ["short", " " * 20, "x" * 2000])
def test_bad_passwords(password):
    with pytest.raises(svc.StaffError):
        svc.check_password(password)


def test_passwords_are_hashed_with_argon2id():
    hashed = svc._hasher().hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert svc._verify(hashed, "correct horse battery staple")
    assert not svc._verify(hashed, "Correct horse battery staple")
    assert not svc._verify("not a hash", "anything")
