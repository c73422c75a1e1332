"""Campaigns in the database: seeding, the service functions (create, replace, close, reopen, the
default campaign, import and export) with their problems and audit entries, and a second process
picking a change up (bots/catalog.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import threading
import tomllib

import pytest
from sqlalchemy import func, select

from bots import campaigns as svc
from bots import catalog as catalogs
from bots.catalog import CatalogWatcher
from bots.runtime import Runtime
from config.campaigns import SHIPPED_CAMPAIGNS, campaign_document, dumps, load_catalog
from storage import campaigns as store
from storage.models import AuditLog, CampaignKeywordRow, CampaignRow
from tests.support.twilio_client import messages, post_sms

ADMIN = svc.Actor("admin@example.org", "203.0.113.9")


def shipped_campaign() -> dict:
    return copy.deepcopy(tomllib.loads(SHIPPED_CAMPAIGNS.read_text(encoding="utf-8"))["campaigns"][0])


def new_campaign(slug="sueno", keywords=None) -> dict:
    c = shipped_campaign()
    c.update(slug=slug, goal=5000, keywords=keywords or {"DREAM": "en", "SUEÑO": "es"})
    c["en"].update(title="Dream Act Now", summary="Tell Congress: pass the Dream Act now. Add your name.")
    c["es"].update(title="Dream Act Ya", summary="Dile al Congreso: aprueba el Dream Act ya. Firma.")
    return c


def audit(rt) -> list[tuple[str, str, str | None, dict]]:
    with rt.db.uow() as uow:
        rows = uow.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        return [(r.staff_email, r.action, r.target, json.loads(r.detail)) for r in rows
                if r.action.startswith(("campaign_", "organization_"))]


def version(rt) -> int | None:
    with rt.db.uow() as uow:
        return store.version(uow.session)


@pytest.fixture
def app_rt(settings, clock):
    """A runtime built as the app builds one: from the database, seeded from the campaign file."""
    runtime = Runtime.build(settings)
    runtime.clock = clock
    yield runtime
    runtime.db.dispose()


def test_an_empty_database_is_seeded_once_from_the_campaign_file(settings, tmp_path, clock):
    rt = Runtime.build(settings)
    assert rt.live.version == 1 and list(rt.catalog.campaigns) == ["end-scomm"]
    assert rt.catalog == load_catalog()  # what was stored reads back as the file says, keyword spellings too
    # a later start with another campaign file: the database is the truth now, the file is not read
    other = tmp_path / "other.toml"
    other.write_text("this is not TOML", encoding="utf-8")
    again = Runtime.build(settings.with_(campaigns_path=other))
    assert list(again.catalog.campaigns) == ["end-scomm"] and again.live.version == 1
    for r in (rt, again):
        r.db.dispose()


def test_two_processes_seeding_at_once_store_the_campaigns_once(settings, clock):
    catalog = load_catalog()
    runtimes = [Runtime.build(settings, catalog=catalog) for _ in range(4)]
    results = []
    start = threading.Barrier(len(runtimes))

    def seed(r):
        start.wait()
        results.append(catalogs.seed(r.db, catalog, clock()))

    threads = [threading.Thread(target=seed, args=(r,)) for r in runtimes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False, False, False, True]
    with runtimes[0].db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(CampaignRow)) == 1
        assert uow.session.scalar(select(func.count()).select_from(CampaignKeywordRow)) == 2
    for r in runtimes:
        r.db.dispose()


def test_create_answers_the_new_keyword_and_is_audited_with_its_values(app_rt, clock):
    from webhooks import create_app

    client = create_app({"TESTING": True}, app_rt).test_client()
    assert "couldn" not in messages(post_sms(client, "+13125550101", "SUEÑO"))[0]  # no such campaign yet: help
    change = svc.create_campaign(app_rt, new_campaign(), ADMIN)
    assert change.ok and change.added == ["sueno"] and change.campaign["keywords"] == {"DREAM": "en", "SUEÑO": "es"}
    assert app_rt.live.version == 2 == version(app_rt)
    # this process runs on it at once: "sueño", "Sueno!" and "SUEÑO" all start it
    assert messages(post_sms(client, "+13125550102", "sueño"))[0] == "Dile al Congreso: aprueba el Dream Act ya. Firma."
    assert messages(post_sms(client, "+13125550103", "Dream!"))[0].startswith("Tell Congress")
    [(who, action, target, detail)] = audit(app_rt)
    assert (who, action, target) == ("admin@example.org", "campaign_create", "sueno")
    assert detail["new"]["goal"] == 5000 and detail["new"]["keywords"] == [["DREAM", "en"], ["SUEÑO", "es"]]
    assert detail["new"]["en.title"] == "Dream Act Now"


def test_replace_records_old_and_new_values_of_what_changed_only(app_rt):
    doc = svc.get_campaign(app_rt, "end-scomm")
    doc["goal"] = 250000
    doc["en"]["summary"] = "End S-Comm: it turns local police into immigration agents. Sign now."
    doc["keywords"] = {"SCOMM": "en", "ENDSCOMM": "en", "FIRMA": "es"}
    change = svc.replace_campaign(app_rt, "end-scomm", doc, ADMIN)
    assert change.ok and change.replaced == ["end-scomm"]
    [(_, action, target, detail)] = audit(app_rt)
    assert (action, target) == ("campaign_edit", "end-scomm")
    assert detail["old"] == {"goal": 100000, "keywords": [["SCOMM", "en"], ["FIRMA", "es"]],
                             "en.summary": load_catalog().campaigns["end-scomm"].texts["en"].summary}
    assert detail["new"] == {"goal": 250000, "keywords": [["SCOMM", "en"], ["ENDSCOMM", "en"], ["FIRMA", "es"]],
                             "en.summary": doc["en"]["summary"]}
    assert svc.get_campaign(app_rt, "end-scomm") == doc
    # the same body again changes nothing, writes nothing and keeps the version
    before = version(app_rt)
    again = svc.replace_campaign(app_rt, "end-scomm", doc, ADMIN)
    assert again.ok and not again.changed and again.unchanged == ["end-scomm"]
    assert version(app_rt) == before and len(audit(app_rt)) == 1


def test_problems_come_back_in_the_file_checks_words_and_nothing_is_written(app_rt):
    svc.create_campaign(app_rt, new_campaign(), ADMIN)
    before = version(app_rt)
    bad = new_campaign("other", keywords={"SCOMM": "en", "STOP": "es"})
    bad["activ"] = True
    bad["goal"] = "lots"
    bad["es"]["summary"] = "palabra " * 50
    problems = svc.create_campaign(app_rt, bad, ADMIN).problems
    assert "campaign 'other': unknown key 'activ' (did you mean 'active'?)" in problems
    assert "campaign 'other': 'goal' must be a whole number of signatures" in problems
    assert "campaign 'other': STOP is reserved for opt-out, opt-in, help or language and cannot be a campaign " \
           "keyword" in problems
    assert any(p.startswith("campaign 'other' (es): the SMS summary takes 3 GSM-7 segments") for p in problems)
    assert version(app_rt) == before and [a for _, a, _, _ in audit(app_rt)] == ["campaign_create"]
    # the keyword another campaign has is reported on the new campaign, once the rest is right
    taken = new_campaign("other", keywords={"SCOMM": "en", "OTRA": "es"})
    assert svc.create_campaign(app_rt, taken, ADMIN).problems == [
        "campaign 'other': keyword SCOMM is claimed twice (also by campaign 'end-scomm')"]
    assert svc.create_campaign(app_rt, new_campaign(), ADMIN).problems == [
        "campaign 'sueno': a campaign with this slug exists already (edit it instead)"]


def test_a_slug_never_changes(app_rt):
    doc = svc.get_campaign(app_rt, "end-scomm")
    doc["slug"] = "end-scomm-2"
    assert svc.replace_campaign(app_rt, "end-scomm", doc, ADMIN).problems == [
        "campaign 'end-scomm': the slug cannot be changed (this body says 'end-scomm-2')"]
    with pytest.raises(svc.UnknownCampaign):
        svc.replace_campaign(app_rt, "nope", doc, ADMIN)


def test_close_keeps_signatures_and_the_keyword_answers_closed_then_reopen(app_rt):
    from webhooks import create_app

    client = create_app({"TESTING": True}, app_rt).test_client()
    svc.create_campaign(app_rt, new_campaign(), ADMIN)
    for text in ("DREAM", "Ana López", "60601"):
        post_sms(client, "+13125550110", text)
    change = svc.close_campaign(app_rt, "sueno", ADMIN)
    assert change.ok and change.campaign["active"] is False
    assert messages(post_sms(client, "+13125550111", "DREAM")) == [
        'The petition "Dream Act Now" is closed. Thank you for caring!']
    [row] = [r for r in svc.list_campaigns(app_rt) if r["slug"] == "sueno"]
    assert row["signatures"] == 1 and row["active"] is False
    assert audit(app_rt)[-1][1:] == ("campaign_close", "sueno", {"old": {"active": True}, "new": {"active": False}})
    assert svc.reopen_campaign(app_rt, "sueno", ADMIN).ok
    assert messages(post_sms(client, "+13125550111", "DREAM"))[0].startswith("Tell Congress")
    assert audit(app_rt)[-1][1] == "campaign_reopen"


def test_the_default_campaign_closes_only_when_another_is_named(app_rt):
    problem = ("campaign 'end-scomm': the default campaign cannot be closed (active = false); name another "
               "campaign as default_campaign first")
    assert svc.close_campaign(app_rt, "end-scomm", ADMIN).problems == [problem]
    doc = svc.get_campaign(app_rt, "end-scomm")
    assert svc.replace_campaign(app_rt, "end-scomm", {**doc, "active": False}, ADMIN).problems == [problem]
    svc.create_campaign(app_rt, new_campaign(), ADMIN)
    change = svc.close_campaign(app_rt, "end-scomm", ADMIN, new_default="sueno")
    assert change.ok and change.organization_changed
    assert app_rt.catalog.organization.default_campaign == "sueno"
    assert not app_rt.catalog.campaigns["end-scomm"].active
    assert [a for _, a, _, _ in audit(app_rt)][-2:] == ["campaign_close", "organization_edit"]
    assert audit(app_rt)[-1][3] == {"old": {"default_campaign": "end-scomm"}, "new": {"default_campaign": "sueno"}}
    assert svc.set_default_campaign(app_rt, "end-scomm", ADMIN).problems == [problem]


def test_import_is_all_or_nothing_and_export_round_trips(app_rt, tmp_path):
    good = new_campaign()
    bad = new_campaign("broken", keywords={"HELP": "en"})
    del bad["es"]
    data = {"campaigns": [good, bad]}
    before = version(app_rt)
    problems = svc.import_campaigns(app_rt, data, svc.cli_actor(), "new.toml").problems
    assert problems == [  # the file's own words: the check `firma campaigns import` runs
        "campaign 'broken': HELP is reserved for opt-out, opt-in, help or language and cannot be a campaign keyword",
        "campaigns.broken: the es translation is missing (add a [campaigns.broken.es] table)",
    ]
    assert version(app_rt) == before  # the good campaign was not stored either
    assert [c["slug"] for c in svc.export_document(app_rt)["campaigns"]] == ["end-scomm"]
    change = svc.import_campaigns(app_rt, {"campaigns": [good]}, svc.cli_actor(), "new.toml")
    assert change.ok and change.added == ["sueno"]
    exported = dumps(svc.export_document(app_rt))
    assert '"SUEÑO" = "es"' in exported  # TOML quotes a key with a letter outside A-Z
    again = svc.import_campaigns(app_rt, tomllib.loads(exported), svc.cli_actor(), "export.toml")
    assert again.ok and not again.changed and again.unchanged == ["end-scomm", "sueno"]
    assert dumps(svc.export_document(app_rt)) == exported
    assert audit(app_rt)[-1][0].startswith("cli:")


def test_a_keyword_can_move_between_campaigns_in_one_import(app_rt):
    svc.create_campaign(app_rt, new_campaign(), ADMIN)
    scomm = svc.get_campaign(app_rt, "end-scomm")
    sueno = svc.get_campaign(app_rt, "sueno")
    scomm["keywords"] = {"SCOMM": "en", "FIRMA": "es", "DREAM": "en"}
    sueno["keywords"] = {"DREAMACT": "en", "SUEÑO": "es"}
    change = svc.import_campaigns(app_rt, {"campaigns": [sueno, scomm]}, ADMIN, "f.toml")
    assert change.ok, change.problems
    assert app_rt.catalog.keywords["DREAM"] == ("end-scomm", "en")
    assert list(app_rt.catalog.campaigns) == ["end-scomm", "sueno"]  # the stored order stays


def test_another_process_runs_on_a_change_after_its_next_check(app_rt, settings, clock):
    other = Runtime.build(settings)  # as another gunicorn worker, on another host
    watcher = CatalogWatcher(other)
    assert not watcher.check()  # nothing changed
    svc.create_campaign(app_rt, new_campaign(), ADMIN)
    assert "DREAM" not in other.catalog.keywords
    assert watcher.check() and other.catalog.keywords["DREAM"] == ("sueno", "en")
    assert other.engine.catalog is other.catalog  # swapped together
    assert not watcher.check()
    other.db.dispose()


def test_the_watcher_thread_survives_a_database_that_does_not_answer(app_rt, settings, caplog):
    broken = Runtime.build(settings, catalog=app_rt.catalog)
    broken.db.engine.dispose()
    broken.db.snapshot = lambda: (_ for _ in ()).throw(OSError("connection refused"))  # every check fails
    watcher = CatalogWatcher(broken)
    assert not watcher.check() and not watcher.check()
    assert [r.getMessage() for r in caplog.records if "cannot check" in r.getMessage()] == [
        "campaigns: cannot check for changes (OSError: connection refused); trying again every 2 s"]


def test_the_runtime_never_goes_back_to_an_older_version(app_rt):
    old_catalog, old_version = app_rt.catalog, app_rt.live.version
    svc.create_campaign(app_rt, new_campaign(), ADMIN)
    assert not app_rt.use(old_catalog, old_version)
    assert "sueno" in app_rt.catalog.campaigns


def test_campaign_document_is_what_the_api_takes(app_rt):
    doc = campaign_document(app_rt.catalog.campaigns["end-scomm"])
    assert set(doc) == {"slug", "goal", "active", "broadcast_stop_notice", "keywords", "en", "es"}
    assert json.loads(json.dumps(doc)) == doc
    assert svc.replace_campaign(app_rt, "end-scomm", json.loads(json.dumps(doc)), ADMIN).unchanged == ["end-scomm"]
