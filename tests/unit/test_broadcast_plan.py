"""Broadcast planning without a database: texts, quiet hours per time zone, retry policy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bots import broadcast_plan as plan
from bots.channels.sms import SMS
from config import gsm
from config.settings import parse_quiet_hours
from tests.support.broadcasts import max_in_any_second

QUIET = parse_quiet_hours("20:00-09:00")
UTC = timezone.utc


def test_placeholders_are_filled_and_unknown_ones_refused():
    assert plan.personalise("Hi {first_name} ({name})", "  Ana María López ") == "Hi Ana (Ana María López)"
    assert plan.personalise("Hi {first_name}", "") == "Hi friend"
    assert plan.check_template("  Literal {{braces}} ok ") == "Literal {{braces}} ok"
    for bad, word in (("Hi {zip}", "{zip}"), ("Hi {", "stray brace"), ("   ", "empty"), ("{name.upper}", "{name.upper}")):
        with pytest.raises(plan.BroadcastError, match=word.replace("{", r"\{").replace("}", r"\}")):
            plan.check_template(bad)


def test_sms_gets_the_stop_notice_once_and_travels_as_gsm7():
    notice = "Reply STOP to opt out."
    text = SMS.broadcast_text("\u201cWe won\u201d \u2014 thank you, {first_name}!", "Zoë", notice)
    assert text == '"We won" - thank you, Zoe! Reply STOP to opt out.'
    assert gsm.segments(text) == ("GSM-7", 1)
    assert SMS.broadcast_text("Text stop to quit", "A", notice) == "Text stop to quit"  # already says it
    assert SMS.broadcast_text("Hi", "A", None) == "Hi"
    check = SMS.check_broadcast("Hola {first_name} 🎉", "es", None)
    assert (check.encoding, check.segments) == ("UCS-2", 1)
    with pytest.raises(plan.BroadcastError, match="segments"):
        SMS.check_broadcast("x" * 1600, "en", notice)


@pytest.mark.parametrize("now, zone, opens", [
    # 02:00 UTC in November: New York 21:00 (quiet until 09:00 EST = 14:00 UTC), Los Angeles 18:00 (open)
    (datetime(2026, 11, 28, 2, 0, tzinfo=UTC), "America/New_York", datetime(2026, 11, 28, 14, 0, tzinfo=UTC)),
    (datetime(2026, 11, 28, 2, 0, tzinfo=UTC), "America/Los_Angeles", None),
    # Honolulu 08:30 is quiet until 09:00 HST = 19:00 UTC
    (datetime(2026, 11, 28, 18, 30, tzinfo=UTC), "Pacific/Honolulu", datetime(2026, 11, 28, 19, 0, tzinfo=UTC)),
    # The night clocks spring forward: 09:00 EDT the next morning is 13:00 UTC, not 14:00
    (datetime(2026, 3, 8, 3, 0, tzinfo=UTC), "America/New_York", datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),
])
def test_quiet_until_in_the_recipients_zone(now, zone, opens):
    assert plan.quiet_until(zone, now, QUIET) == opens


def test_unknown_zone_waits_until_both_coasts_are_awake_and_off_means_never_quiet():
    now = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # New York 08:00, Los Angeles 05:00
    assert plan.quiet_until(None, now, QUIET) == datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # 09:00 PST
    assert plan.quiet_until("Not/AZone", datetime(2026, 11, 28, 18, 0, tzinfo=UTC), QUIET) is None
    assert plan.quiet_until("America/New_York", datetime(2026, 11, 28, 2, 0, tzinfo=UTC), None) is None


def test_area_codes_and_backoff():
    assert plan.area_code("+12125550101") == "212"
    assert plan.area_code("+442071234567") is None and plan.area_code("12125550101") is None
    assert [plan.backoff(n) for n in (1, 2, 3, 10)] == [timedelta(seconds=s) for s in (1, 2, 4, 60)]


def test_sliding_window_counter_used_by_the_rate_tests():
    assert max_in_any_second([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_in_any_second([0.0, 1.0, 2.0]) == 1
    assert max_in_any_second([]) == 0
