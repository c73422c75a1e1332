"""Regressions for failures found while hardening (each was a crash or a 500)."""

from __future__ import annotations

from click.testing import CliRunner

from tests.support.twilio_client import post_sms


def test_firma_campaigns_lists_counts(client, rt):
    # repository.signature_counts used Result.tuples(), which raises TypeError on SQLAlchemy 2.1 ORM results.
    from webhooks.cli import Context, main

    for body in ("SCOMM", "Ana López", "60601"):
        post_sms(client, "+13125550150", body)
    ctx = Context()
    ctx._settings, ctx._runtime = rt.settings, rt
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["campaigns"], obj=ctx, catch_exceptions=False)
    assert result.exit_code == 0
    assert "end-scomm" in result.output and "SCOMM (en), FIRMA (es)" in result.output
    row = next(line for line in result.output.splitlines() if "end-scomm" in line)
    assert [cell.strip() for cell in row.split("│")][4] == "1"  # signatures


def test_simulator_refuses_lone_surrogates_instead_of_failing(client, rt):
    # JSON may spell a lone surrogate ("\ud800"); as a name it reached the database, which cannot
    # encode it: a 500. Now a 400 with a reason, and the conversation is still waiting for a name.
    from tests.support.simulator import headers

    csrf = headers(client)

    def send(text: bytes):
        return client.post("/simulator/send", data=b'{"channel": "sms", "address": "7", "text": "' + text + b'"}',
                           content_type="application/json", headers=csrf)

    assert send(b"SCOMM").status_code == 200
    refused = send(b"Ana \\ud800 Lopez")
    assert refused.status_code == 400 and "surrogate" in refused.get_json()["error"]
    assert send(b"Ana Lopez").get_json()["messages"] == ["Thanks, Ana Lopez. Now reply with your 5-digit ZIP code."]
