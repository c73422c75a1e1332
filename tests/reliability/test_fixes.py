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
