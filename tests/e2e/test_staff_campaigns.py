"""Campaigns edited in the staff console (Flask's test client): create and edit through the form,
the same problems in the same words as the campaign file check and the service, the audit log, and
what members get afterwards."""

from __future__ import annotations

import html
import re

import pytest
from click.testing import CliRunner

from bots import campaigns as svc
from config.campaigns import dumps
from tests.e2e.test_staff import csrf_token, fast_hashing, sign_in, staff_user  # noqa: F401 - fixtures
from tests.support.twilio_client import messages, post_sms
from webhooks.cli import main

pytestmark = pytest.mark.pooler  # CI runs these through PgBouncer too (FIRMA_TEST_POOLER=1)

SUMMARY_EN = "Tell Congress: pass the Dream Act now. Add your name."


@pytest.fixture
def staff_client(client, staff_user):  # noqa: F811
    assert sign_in(client).status_code == 303
    return client


def form_values(**changes) -> dict:
    values = {
        "slug": "sueno", "goal": "5,000", "active": "y", "broadcast_stop_notice": "y",
        "keywords_en": "DREAM", "keywords_es": "SUEÑO, SUENO2",
        "title_en": "Dream Act Now", "title_es": "Dream Act Ya",
        "summary_en": SUMMARY_EN, "summary_es": "Dile al Congreso: aprueba el Dream Act ya. Firma.",
        "statement_en": "We ask Congress to pass the Dream Act.", "statement_es": "Pedimos al Congreso el Dream Act.",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def post_form(client, path: str, **changes):
    return client.post(path, data={"csrf_token": csrf_token(client, path), **form_values(**changes)})


def page_problems(response) -> list[str]:
    """The problems listed at the top of the form, as a person reads them."""
    body = response.get_data(as_text=True)
    block = re.search(r'<div class="alert" role="alert" id="problems">(.*?)</div>', body, re.S)
    assert block, "no list of problems on the page"
    return [html.unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in re.findall(r"<li>(.*?)</li>", block.group(1))]


def test_create_a_campaign_in_the_console_and_members_can_sign_at_once(staff_client, rt):
    page = staff_client.get("/staff/campaigns/new").get_data(as_text=True)
    assert 'name="summary_en"' in page and 'name="summary_es"' in page and 'lang="es"' in page
    assert "campaign_form.js" in page and "<script>" not in page  # no inline script (CSP)
    r = post_form(staff_client, "/staff/campaigns/new")
    assert r.status_code == 303 and r.headers["Location"].endswith("/staff/campaigns/sueno")
    shown = staff_client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Dream Act Now" in shown and "members can text DREAM, SUEÑO, SUENO2" in shown
    assert 'href="/staff/campaigns/sueno/edit"' in shown
    assert messages(post_sms(staff_client, "+13125550120", "sueño"))[0].startswith("Dile al Congreso")
    assert rt.catalog.campaigns["sueno"].goal == 5000
    audit = staff_client.get("/staff/audit").get_data(as_text=True)
    assert "campaign create" in audit and "sueno" in audit and "Dream Act Now" in audit


def test_edit_shows_the_values_and_saves_what_changed(staff_client, rt):
    page = staff_client.get("/staff/campaigns/end-scomm/edit").get_data(as_text=True)
    assert 'value="SCOMM"' in page and 'value="FIRMA"' in page and 'value="100000"' in page
    assert 'name="slug"' not in page  # a slug never changes
    assert "(GSM-7): fits" in page  # the summary's count, before any typing
    summary = "End S-Comm: it makes local police act as immigration agents. Sign to end it."
    doc = svc.get_campaign(rt, "end-scomm")
    r = post_form(staff_client, "/staff/campaigns/end-scomm/edit", slug="ignored", goal="150000",
                  keywords_en="SCOMM, ENDSCOMM", keywords_es="FIRMA", title_en=doc["en"]["title"],
                  title_es=doc["es"]["title"], summary_en=summary, summary_es=doc["es"]["summary"],
                  statement_en=doc["en"]["statement"], statement_es=doc["es"]["statement"])
    assert r.status_code == 303
    assert "Saved." in staff_client.get(r.headers["Location"]).get_data(as_text=True)
    assert messages(post_sms(staff_client, "+13125550121", "endscomm"))[0] == summary
    after = svc.get_campaign(rt, "end-scomm")
    assert after["slug"] == "end-scomm" and after["goal"] == 150000
    assert after["keywords"] == {"SCOMM": "en", "ENDSCOMM": "en", "FIRMA": "es"}
    audit = staff_client.get("/staff/audit").get_data(as_text=True)
    assert "campaign edit" in audit and "<del>100000</del> → <ins>150000</ins>" in audit
    assert "<del>SCOMM (en), FIRMA (es)</del> → <ins>SCOMM (en), ENDSCOMM (en), FIRMA (es)</ins>" in audit


def test_problems_are_listed_and_shown_beside_their_fields_and_nothing_is_saved(staff_client, rt):
    r = post_form(staff_client, "/staff/campaigns/new", keywords_en="DREAM, STOP", goal="many",
                  summary_es="palabra " * 50, title_en="")
    assert r.status_code == 422
    found = page_problems(r)
    assert found == [
        "campaign 'sueno': 'goal' must be a whole number of signatures",
        "campaign 'sueno': STOP is reserved for opt-out, opt-in, help or language and cannot be a campaign keyword",
        "campaigns.sueno.en: 'title' is missing or empty",
        "campaign 'sueno' (es): the SMS summary takes 3 GSM-7 segments (399 characters); it must fit 2 GSM-7 "
        "segments (306 characters)",
    ]
    body = r.get_data(as_text=True)
    assert re.search(r'id="goal"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="goal"', body)
    assert 'id="keywords_en-errors"' in body and 'id="summary_es-errors"' in body and 'id="title_en-errors"' in body
    assert 'value="DREAM, STOP"' in body  # what was typed stays
    assert "sueno" not in rt.catalog.campaigns and svc.get_campaign(rt, "sueno") is None


def test_the_same_keyword_typed_twice_is_reported_as_the_file_would(staff_client):
    r = post_form(staff_client, "/staff/campaigns/new", keywords_en="DREAM", keywords_es="DREAM")
    assert page_problems(r) == ["campaign 'sueno': keyword DREAM is listed twice"]


# The same problem, three ways in: a campaign file (`firma campaigns import`), the console's form, and
# the service the API calls. Each case: (form changes, the same change to one campaign of the file).
CASES = {
    "reserved keyword": ({"keywords_en": "HELP"}, lambda c: c.update(keywords={"HELP": "en", "SUEÑO": "es"})),
    "keyword of another campaign": ({"keywords_en": "scomm!"},
                                    lambda c: c.update(keywords={"scomm!": "en", "SUEÑO": "es"})),
    "summary too long": ({"summary_en": "word " * 70}, lambda c: c["en"].update(summary="word " * 70)),
    "summary outside GSM-7": ({"summary_en": "Sign now ✊"}, lambda c: c["en"].update(summary="Sign now ✊")),
    "goal not a number": ({"goal": "a lot"}, lambda c: c.update(goal="a lot")),
    "missing title": ({"title_es": " "}, lambda c: c["es"].update(title=" ")),
    "bad slug": ({"slug": "Dream Act"}, lambda c: c.update(slug="Dream Act")),
    "no keywords": ({"keywords_en": "", "keywords_es": ""}, lambda c: c.update(keywords={})),
    "keyword not a word": ({"keywords_en": "!!!"}, lambda c: c.update(keywords={"!!!": "en", "SUEÑO": "es"})),
}


def _file_campaign() -> dict:
    return {"slug": "sueno", "goal": 5000, "active": True, "broadcast_stop_notice": True,
            "keywords": {"DREAM": "en", "SUEÑO": "es", "SUENO2": "es"},
            "en": {"title": "Dream Act Now", "summary": SUMMARY_EN, "statement": "We ask Congress to pass the Dream Act."},
            "es": {"title": "Dream Act Ya", "summary": "Dile al Congreso: aprueba el Dream Act ya. Firma.",
                   "statement": "Pedimos al Congreso el Dream Act."}}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_has_the_same_words_in_the_file_the_console_and_the_service(case, staff_client, rt, db_url,
                                                                                 tmp_path):
    form_change, file_change = CASES[case]
    campaign = _file_campaign()
    file_change(campaign)
    path = tmp_path / "campaigns.toml"
    path.write_text(dumps({"campaigns": [campaign]}), encoding="utf-8")
    svc.list_campaigns(rt)  # the database has its campaigns (the CLI below builds its runtime from them)
    result = CliRunner().invoke(main, ["campaigns", "import", str(path)], env={"FIRMA_DATABASE_URL": db_url})
    assert result.exit_code == 1 and "nothing was imported" in result.output
    from_file = [line[4:] for line in result.output.splitlines() if line.startswith("  - ")]
    from_console = page_problems(post_form(staff_client, "/staff/campaigns/new", **form_change))
    from_service = [str(p) for p in svc.create_campaign(rt, campaign, svc.Actor("api@example.org")).problems]
    assert from_file and from_file == from_console == from_service, (from_file, from_console, from_service)


def test_closing_the_default_campaign_in_the_console_says_how(staff_client, rt):
    doc = svc.get_campaign(rt, "end-scomm")
    r = post_form(staff_client, "/staff/campaigns/end-scomm/edit", active=None, goal="100000",
                  keywords_en="SCOMM", keywords_es="FIRMA", title_en=doc["en"]["title"], title_es=doc["es"]["title"],
                  summary_en=doc["en"]["summary"], summary_es=doc["es"]["summary"],
                  statement_en=doc["en"]["statement"], statement_es=doc["es"]["statement"])
    assert r.status_code == 422
    assert page_problems(r) == ["campaign 'end-scomm': the default campaign cannot be closed (active = false); "
                                "name another campaign as default_campaign first"]
    assert "first make another open campaign the default" in r.get_data(as_text=True)
    post_form(staff_client, "/staff/campaigns/new")
    page = staff_client.get("/staff/campaigns/sueno/edit").get_data(as_text=True)
    assert "Make this the default campaign" in page
    r = staff_client.post("/staff/campaigns/sueno/default", data={"csrf_token": csrf_token(staff_client, "/staff/")})
    assert r.status_code == 303 and rt.catalog.organization.default_campaign == "sueno"
    # a message without a keyword is about the new default now
    assert "Dream Act Now" in messages(post_sms(staff_client, "+13125550122", "hello"))[0]


def test_edit_of_an_unknown_campaign_is_404_and_posts_need_the_csrf_token(staff_client):
    assert staff_client.get("/staff/campaigns/nope/edit").status_code == 404
    r = staff_client.post("/staff/campaigns/new", data=form_values())
    assert r.status_code == 400 and "The form expired" in r.get_data(as_text=True)
    assert staff_client.get("/staff/campaigns/sueno/edit").status_code == 404
