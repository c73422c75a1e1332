"""A Twilio signature that does not match: 403, and one warning (not one per request) naming the URL
the signature was checked against and the X-Forwarded-* headers seen, since the usual cause is a
FIRMA_PUBLIC_URL that is not the address Twilio calls."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from tests.support import twilio_client as tc


def post_signed_for(client, url: str, headers: dict):
    params = tc.sms_params("+13125550101", "SCOMM", None)
    return client.post(tc.SMS_PATH, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": tc.sign(params, url, tc.TOKEN), **headers})


def test_a_mismatch_logs_one_warning_naming_the_url_and_the_forwarded_headers(client, caplog):
    caplog.set_level(logging.WARNING)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sms.example.org"}
    for _ in range(5):  # Twilio signed for the address it calls, which is not FIRMA_PUBLIC_URL
        r = post_signed_for(client, "https://sms.example.org/webhooks/twilio/sms", forwarded)
        assert r.status_code == 403
    warnings = [rec.getMessage() for rec in caplog.records if "signature" in rec.getMessage()]
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert tc.PUBLIC_URL + tc.SMS_PATH in line  # what it was checked against
    assert "X-Forwarded-Proto: https" in line and "X-Forwarded-Host: sms.example.org" in line
    assert "FIRMA_PUBLIC_URL" in line
    assert tc.TOKEN not in line
