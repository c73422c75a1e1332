"""The campaign file and settings: mistakes a staff member or operator makes get clear messages."""

from __future__ import annotations

import re
import tomllib
from datetime import time
from pathlib import Path

import pytest

from config.campaigns import CampaignFileError, document, dumps, load_catalog, load_texts, parse_catalog
from config.keywords import normalize_keyword
from config.settings import SHIPPED_CAMPAIGNS, Settings, SettingsError, parse_quiet_hours


def shipped() -> dict:
    return tomllib.loads(SHIPPED_CAMPAIGNS.read_text(encoding="utf-8"))


def problems(data) -> list[str]:
    with pytest.raises(CampaignFileError) as exc:
        parse_catalog(data, "campaigns.toml", load_texts())
    return exc.value.problems


def test_shipped_campaign_file_loads():
    catalog = load_catalog()
    c = catalog.campaigns["end-scomm"]
    assert dict(c.keywords) == {"SCOMM": "en", "FIRMA": "es"}
    assert c.goal > 0 and c.text("es").title == "Fin a S-Comm Ya"
    assert catalog.default_campaign is c


def test_missing_translation_is_named():
    data = shipped()
    del data["campaigns"][0]["es"]
    assert any("end-scomm" in p and "es translation is missing" in p for p in problems(data))


def test_keyword_claimed_twice():
    data = shipped()
    second = dict(data["campaigns"][0], slug="other", keywords={"scomm!": "en", "OTRA": "es"})
    data["campaigns"].append(second)
    assert any("SCOMM" in p.upper() and "claimed twice" in p and "end-scomm" in p for p in problems(data))


@pytest.mark.parametrize("word", ["STOP", "help", "Ayuda", "ESPAÑOL", "yes"])
def test_reserved_words_cannot_be_keywords(word):
    data = shipped()
    data["campaigns"][0]["keywords"] = {word: "en", "FIRMA": "es"}
    assert any("reserved" in p for p in problems(data))


def test_summary_too_long_for_two_segments():
    data = shipped()
    data["campaigns"][0]["en"]["summary"] = "word " * 80
    assert any("segments" in p and "end-scomm' (en)" in p for p in problems(data))


def test_several_problems_reported_at_once():
    data = shipped()
    data["campaigns"][0]["slug"] = "End SComm"
    data["organization"]["name"] = ""
    found = problems(data)
    assert any("slug" in p for p in found) and any("'name'" in p for p in found)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(CampaignFileError, match="cannot be read"):
        load_catalog(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[organization\nname=", encoding="utf-8")
    with pytest.raises(CampaignFileError, match="not valid TOML"):
        load_catalog(bad)


def test_texts_must_match_between_languages(tmp_path):
    for lang in ("en", "es"):
        (tmp_path / f"{lang}.toml").write_text(
            (Path(__file__).parents[2] / "config" / "texts" / f"{lang}.toml").read_text(encoding="utf-8"),
            encoding="utf-8")
    with open(tmp_path / "es.toml", "a", encoding="utf-8") as fh:
        fh.write('\nextra = "solo en español"\n')
    with pytest.raises(CampaignFileError, match="'extra' is not in en.toml"):
        load_texts(tmp_path)


@pytest.mark.parametrize("text,word", [(" scomm ", "SCOMM"), ("¡Firma!", "FIRMA"), ("Español", "ESPANOL"),
                                        ("S.T.O.P", "S.T.O.P"), ("\u200bstop\u200b", "STOP"), ("...", "")])
def test_normalize_keyword(text, word):
    assert normalize_keyword(text) == word


def test_settings_defaults_and_env():
    s = Settings.from_env({})
    assert s.database_url == "sqlite:///firma.db" and s.campaigns_path == SHIPPED_CAMPAIGNS
    assert s.secret_key_generated and len(s.secret_key) >= 32
    assert s.quiet_hours.start == time(20) and s.sms_rate == 1 and s.telegram_rate == 30
    assert s.twilio_api_url == "https://api.twilio.com" and s.trusted_proxies == 0
    s = Settings.from_env({"FIRMA_QUIET_HOURS": "off", "FIRMA_SMS_RATE": "100", "FIRMA_PUBLIC_URL": "https://x.org/",
                           "FIRMA_SECRET_KEY": "k", "FIRMA_TRUSTED_PROXIES": "1"})
    assert s.quiet_hours is None and s.sms_rate == 100 and s.public_url == "https://x.org" and s.trusted_proxies == 1
    assert not s.secret_key_generated


@pytest.mark.parametrize("env,name", [({"FIRMA_QUIET_HOURS": "8pm-9am"}, "FIRMA_QUIET_HOURS"),
                                      ({"FIRMA_QUIET_HOURS": "25:00-09:00"}, "FIRMA_QUIET_HOURS"),
                                      ({"FIRMA_SMS_RATE": "fast"}, "FIRMA_SMS_RATE"),
                                      ({"FIRMA_TELEGRAM_RATE": "0"}, "FIRMA_TELEGRAM_RATE"),
                                      ({"FIRMA_TRUSTED_PROXIES": "yes"}, "FIRMA_TRUSTED_PROXIES"),
                                      ({"FIRMA_TRUSTED_PROXIES": "-1"}, "FIRMA_TRUSTED_PROXIES")])
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_quiet_hours_wrap_midnight():
    q = parse_quiet_hours("20:00-09:00")
    assert q.contains(time(23)) and q.contains(time(3)) and not q.contains(time(12)) and not q.contains(time(9))
    q = parse_quiet_hours("01:00-05:30")
    assert q.contains(time(2)) and not q.contains(time(6))


def test_an_unknown_key_is_reported_with_the_key_it_may_have_meant():
    data = shipped()
    data["campaigns"][0]["activ"] = True
    data["campaigns"][0]["en"]["titel"] = "x"
    data["organization"]["helpcontact"] = "x"
    data["campaign"] = []
    data["campaigns"][0]["fr"] = {"title": "x"}
    assert problems(data) == [
        "the file: unknown key 'campaign' (did you mean 'campaigns'?)",
        "organization: unknown key 'helpcontact' (did you mean 'help_contact'?)",
        "campaign 'end-scomm': unknown key 'activ' (did you mean 'active'?)",
        "campaign 'end-scomm': unknown key 'fr' (the keys here are slug, goal, active, broadcast_stop_notice, "
        "keywords, en, es)",
        "campaigns.end-scomm.en: unknown key 'titel' (did you mean 'title'?)",
    ]


def test_a_quoted_non_ascii_keyword_is_matched_folded_and_kept_as_written():
    text = SHIPPED_CAMPAIGNS.read_text(encoding="utf-8").replace('FIRMA = "es"', '"SUEÑO" = "es"')
    catalog = parse_catalog(tomllib.loads(text), "campaigns.toml", load_texts())
    c = catalog.campaigns["end-scomm"]
    assert catalog.keywords[normalize_keyword("¡sueño!")] == ("end-scomm", "es")
    assert dict(c.keywords) == {"SCOMM": "en", "SUENO": "es"} and c.spelled["SUENO"] == "SUEÑO"
    with pytest.raises(tomllib.TOMLDecodeError):  # unquoted, it is not TOML: the docs say to quote it
        tomllib.loads(text.replace('"SUEÑO" = "es"', 'SUEÑO = "es"'))


def test_export_writes_a_file_that_reads_back_as_the_same_catalog():
    catalog = load_catalog()
    text = dumps(document(catalog))
    assert text.startswith("# firma campaign file") and 'statement = """' in text
    again = parse_catalog(tomllib.loads(text), "export.toml", load_texts())
    assert again == catalog and list(again.campaigns) == list(catalog.campaigns)
    assert dumps(document(again)) == text


def test_the_example_in_docs_campaigns_md_is_a_valid_campaign_file():
    page = (Path(__file__).parents[2] / "docs" / "campaigns.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", page, re.S).group(1)
    catalog = parse_catalog(tomllib.loads(example), "docs/campaigns.md", load_texts())
    assert list(catalog.campaigns) == ["end-scomm", "dream-act"]
    assert catalog.keywords["SUENO"] == ("dream-act", "es")


@pytest.mark.parametrize("change,problem", [
    (lambda c: c.update(slug="a" * 65), "'slug' must be at most 64 characters"),
    (lambda c: c.update(goal=10 ** 12), "'goal' must be at most 1,000,000,000 signatures"),
    (lambda c: c.update(keywords={"A" * 33: "en", "FIRMA": "es"}), "is longer than 32 characters"),
])
def test_values_too_big_for_the_database_are_refused(change, problem):
    data = shipped()
    change(data["campaigns"][0])
    assert any(problem in p for p in problems(data))


def test_each_problem_names_its_field():
    data = shipped()
    data["campaigns"][0]["goal"] = -1
    data["campaigns"][0]["es"]["summary"] = ""
    data["campaigns"][0]["keywords"] = {"STOP": "es", "SCOMM": "en"}
    fields = {p.field for p in problems(data)}
    assert fields == {"goal", "es.summary", "keywords.es"}
