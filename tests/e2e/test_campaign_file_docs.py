"""docs/campaigns.md as a newcomer uses it: its complete example file imports as it stands, and the
mistakes it warns about (an unknown key, an unquoted non-ASCII keyword) are reported by
`firma campaigns import`, in one line each, with nothing stored."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from bots import campaigns as svc
from bots.runtime import Runtime
from webhooks.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "campaigns.md"


def example_file() -> str:
    """The first TOML block of docs/campaigns.md: the complete campaign file."""
    return re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)


def run_import(settings, path: Path, *extra: str):
    return CliRunner().invoke(main, ["campaigns", "import", str(path), *extra],
                              env={"FIRMA_DATABASE_URL": settings.database_url})


def test_the_documented_example_imports_with_its_quoted_keyword(settings, tmp_path):
    path = tmp_path / "campaigns.toml"
    path.write_text(example_file(), encoding="utf-8")
    result = run_import(settings, path)
    assert result.exit_code == 0, result.output
    assert "campaign 'dream-act' added" in result.output
    rt = Runtime.build(settings)
    try:
        keywords = {row["slug"]: row["keywords"] for row in svc.list_campaigns(rt)}
        assert keywords["dream-act"] == {"DREAM": "en", "SUEÑO": "es"}  # kept as written, quotes and all
    finally:
        rt.db.dispose()


def test_an_unknown_key_and_an_unquoted_keyword_are_reported_and_nothing_is_stored(settings, tmp_path):
    text = example_file()
    typo = tmp_path / "typo.toml"
    typo.write_text(text.replace('slug = "dream-act"\n', 'slug = "dream-act"\nactiv = true\n'), encoding="utf-8")
    result = run_import(settings, typo)
    assert result.exit_code == 1
    assert "campaign 'dream-act': unknown key 'activ' (did you mean 'active'?)" in result.output
    assert "nothing was imported" in result.output and "Traceback" not in result.output

    unquoted = tmp_path / "unquoted.toml"
    unquoted.write_text(text.replace('"SUEÑO" = "es"', 'SUEÑO = "es"'), encoding="utf-8")
    result = run_import(settings, unquoted)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"line \d+, column \d+", result.output), result.output

    rt = Runtime.build(settings)
    try:
        assert [row["slug"] for row in svc.list_campaigns(rt)] == ["end-scomm"]
    finally:
        rt.db.dispose()
