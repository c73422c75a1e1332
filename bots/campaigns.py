"""Campaign service functions, for the CLI, the staff console and the staff API: list, get, create,
replace, close, reopen, name the default campaign, import a campaign file and export one.

Each change is one transaction: it locks the catalog (storage.campaigns.bump_version), reads every
campaign as committed, checks the result with the campaign file's own rules (config.campaigns
.parse_catalog: the same words for the same problems, wherever the campaign came from), writes it,
writes an audit log entry with the old and new values, and commits. Problems come back as a list of
sentences (the API's 422), and nothing is written. This process runs on the new catalog at once;
the others within bots.catalog.WATCH_INTERVAL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bots import catalog as catalogs
from bots.runtime import Runtime
from config.campaigns import (LANGUAGES, Campaign, CampaignFileError, Catalog, Organization, Problem,
                              campaign_document, document, organization_document, parse_catalog)
from storage import campaigns as store
from storage import repository as repo
from storage import staff_queries as q

# Audit actions.
CAMPAIGN_CREATE, CAMPAIGN_EDIT, CAMPAIGN_CLOSE, CAMPAIGN_REOPEN, ORGANIZATION_EDIT = (
    "campaign_create", "campaign_edit", "campaign_close", "campaign_reopen", "organization_edit")


class UnknownCampaign(LookupError):
    """No campaign has this slug (the API's 404)."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit log names them: a staff email, or cli:<operating-system user>."""

    who: str
    ip: str | None = None


def cli_actor() -> Actor:
    from bots.audit import cli_user

    return Actor(cli_user())


@dataclass
class Change:
    """What a change did: ``problems`` (nothing was written) or the campaigns as they now are."""

    problems: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    organization_changed: bool = False
    campaign: dict | None = None  # the campaign created or edited, as the campaign file spells it

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.organization_changed)


# --- reads ------------------------------------------------------------------------------------------


def current(rt: Runtime) -> Catalog:
    """The campaigns as the database has them now (seeded from the catalog this process runs on when
    it has none); this process switches to them if they are newer than what it runs on."""
    got = catalogs.read(rt.db, rt.catalog.texts)
    if got is None:
        catalogs.seed(rt.db, rt.catalog, rt.now())
        got = catalogs.read(rt.db, rt.catalog.texts)
    rt.use(*got)
    return got[0]


def list_campaigns(rt: Runtime) -> list[dict]:
    """Every campaign, for a list: slug, title, active, goal, signatures, keywords {KEYWORD: language}
    (each keyword as staff wrote it: SUEÑO, not the SUENO it is matched as)."""
    catalog = current(rt)
    with rt.db.snapshot() as uow:
        counts = repo.signature_counts(uow.session)
    return [{"slug": c.slug, "title": c.text("en").title, "active": c.active, "goal": c.goal,
             "signatures": counts.get(c.slug, 0),
             "keywords": {c.spelled.get(word, word): lang for word, lang in c.keywords.items()}}
            for c in catalog.campaigns.values()]


def get_campaign(rt: Runtime, slug: str) -> dict | None:
    """One campaign as the campaign file spells it (the API's body), or None."""
    campaign = current(rt).campaigns.get(slug)
    return campaign_document(campaign) if campaign else None


def export_document(rt: Runtime) -> dict:
    """Every campaign and the organization, as a campaign file's data (``config.campaigns.dumps``)."""
    return document(current(rt))


def is_default(rt: Runtime, slug: str) -> bool:
    return current(rt).organization.default_campaign == slug


# --- changes ----------------------------------------------------------------------------------------


def create_campaign(rt: Runtime, data: dict, actor: Actor) -> Change:
    """A new campaign from one campaign of the campaign file (its slug included)."""
    def plan(cur: Catalog) -> tuple[list[dict], dict | None, list[str]]:
        slug = data.get("slug") if isinstance(data, dict) else None
        if isinstance(slug, str) and slug in cur.campaigns:
            return [], None, [Problem(f"campaign '{slug}': a campaign with this slug exists already "
                                      f"(edit it instead)", "slug")]
        return [data], None, []
    return _change(rt, actor, plan, focus=data.get("slug") if isinstance(data, dict) else None)


def replace_campaign(rt: Runtime, slug: str, data: dict, actor: Actor) -> Change:
    """Replace a campaign's texts, keywords, goal, active and stop notice; its slug stays.
    UnknownCampaign for a slug that is not a campaign."""
    def plan(cur: Catalog) -> tuple[list[dict], dict | None, list[str]]:
        if slug not in cur.campaigns:
            raise UnknownCampaign(slug)
        if not isinstance(data, dict):
            return [data], None, []
        given = data.get("slug", slug)
        if given != slug:
            return [], None, [Problem(f"campaign '{slug}': the slug cannot be changed (this body says "
                                      f"{given!r})", "slug")]
        return [{**data, "slug": slug}], None, []
    return _change(rt, actor, plan, focus=slug)


def close_campaign(rt: Runtime, slug: str, actor: Actor, new_default: str | None = None) -> Change:
    """Close a campaign: its signatures stay, its keywords answer that it is closed. The default
    campaign closes only with ``new_default``, the open campaign that becomes the default instead."""
    return _set_active(rt, slug, False, actor, new_default)


def reopen_campaign(rt: Runtime, slug: str, actor: Actor) -> Change:
    return _set_active(rt, slug, True, actor, None)


def set_default_campaign(rt: Runtime, slug: str, actor: Actor) -> Change:
    """The campaign a message without a keyword is about (it must be open)."""
    def plan(cur: Catalog) -> tuple[list[dict], dict | None, list[str]]:
        if slug not in cur.campaigns:
            raise UnknownCampaign(slug)
        return [], {**organization_document(cur.organization), "default_campaign": slug}, []
    return _change(rt, actor, plan)


def import_campaigns(rt: Runtime, data: dict, actor: Actor, source: str, dry_run: bool = False) -> Change:
    """Add or replace the campaigns of a campaign file (and the organization, when the file has an
    [organization] table); all of them or none. Campaigns only in the database stay as they are."""
    def plan(cur: Catalog) -> tuple[list[dict], dict | None, list[str]]:
        problems = _file_shape_problems(data)
        return ([] if problems else data["campaigns"]), (None if problems else data.get("organization")), problems
    return _change(rt, actor, plan, source=source, dry_run=dry_run, whole_file=True)


def _set_active(rt: Runtime, slug: str, active: bool, actor: Actor, new_default: str | None) -> Change:
    def plan(cur: Catalog) -> tuple[list[dict], dict | None, list[str]]:
        campaign = cur.campaigns.get(slug)
        if campaign is None:
            raise UnknownCampaign(slug)
        org = None
        if new_default and new_default != cur.organization.default_campaign:
            org = {**organization_document(cur.organization), "default_campaign": new_default}
        return [{**campaign_document(campaign), "active": active}], org, []
    return _change(rt, actor, plan, focus=slug)


def _file_shape_problems(data: dict) -> list[str]:
    """What makes a file unusable before its campaigns can be compared with the database's."""
    if not isinstance(data, dict):
        return [Problem("the campaign data must be a table of keys and values")]
    campaigns = data.get("campaigns")
    if not isinstance(campaigns, list) or not campaigns:
        return [Problem("no campaign is defined (add a [[campaigns]] table)", "campaigns")]
    return []


def _change(rt: Runtime, actor: Actor, plan, *, focus: str | None = None, source: str = "the campaign",
            dry_run: bool = False, whole_file: bool = False) -> Change:
    """The one transaction every change is: lock, read, ``plan`` (-> campaigns to add or replace, the
    organization to replace or None, problems found before checking), check, write, audit, commit."""
    now = rt.now()
    texts = rt.catalog.texts
    with rt.db.uow() as uow:
        session = uow.session
        version = store.bump_version(session, now)
        if version is None:  # nothing stored yet: the catalog this process runs on is the first one
            store.claim_seed(session, rt.catalog.organization, now)
            store.save_campaigns(session, list(rt.catalog.campaigns.values()), now)
            version = store.bump_version(session, now)
        _, stored = store.read(session)
        cur = catalogs.from_data(stored, texts)
        incoming, org_doc, problems = plan(cur)
        if problems:
            return Change(problems=problems)
        org_doc = org_doc if org_doc is not None else stored["organization"]
        checked = _check(stored, incoming, org_doc, texts, source, whole_file)
        if isinstance(checked, list):
            return Change(problems=checked)
        new = checked
        slugs = [raw["slug"] for raw in incoming]
        result = Change(organization_changed=_flat_org(new.organization) != _flat_org(cur.organization))
        entries = []
        for slug in slugs:
            after = _flat(new.campaigns[slug])
            if slug not in cur.campaigns:
                result.added.append(slug)
                entries.append((CAMPAIGN_CREATE, slug, {"new": after}))
                continue
            before = _flat(cur.campaigns[slug])
            if before == after:
                result.unchanged.append(slug)
                continue
            result.replaced.append(slug)
            action = CAMPAIGN_EDIT
            if set(_diff(before, after)) == {"active"}:
                action = CAMPAIGN_CLOSE if not after["active"] else CAMPAIGN_REOPEN
            entries.append((action, slug, _old_new(before, after)))
        if result.organization_changed:
            entries.append((ORGANIZATION_EDIT, None, _old_new(_flat_org(cur.organization), _flat_org(new.organization))))
        if focus in new.campaigns:
            result.campaign = campaign_document(new.campaigns[focus])
        if dry_run or not result.changed:
            return result  # rolled back: the version stays, nothing is written
        store.save_campaigns(session, [new.campaigns[s] for s in result.added + result.replaced], now)
        if result.organization_changed:
            store.save_organization(session, new.organization)
        for action, target, detail in entries:
            q.add_audit(session, staff_email=actor.who, action=action, target=target,
                        detail=json.dumps(detail, ensure_ascii=False), ip=actor.ip, now=now)
        uow.commit()
    rt.use(new, version)
    return result


def _check(stored: dict, incoming: list, org_doc: dict, texts, source: str, whole_file: bool) -> Catalog | list[str]:
    """The catalog after the change, or its problems. Checked twice: the incoming campaigns on their
    own (a problem is named as in their own file: 'campaign #2' is the file's second), then with every
    other stored campaign, the incoming ones last (a keyword another campaign has already is reported
    on the incoming campaign). The catalog keeps the stored order, new campaigns at the end."""
    stored_campaigns = stored["campaigns"]
    others = [c["slug"] for c in stored_campaigns]
    alone = {"organization": org_doc, "campaigns": incoming or stored_campaigns}
    try:
        parse_catalog(alone, source, texts, other_slugs=others)
    except CampaignFileError as exc:
        return exc.problems
    incoming_slugs = {c["slug"] for c in incoming}
    kept = [c for c in stored_campaigns if c["slug"] not in incoming_slugs]
    try:
        parse_catalog({"organization": org_doc, "campaigns": kept + incoming}, source, texts)
    except CampaignFileError as exc:
        return exc.problems
    by_slug = {c["slug"]: c for c in incoming}
    ordered = [by_slug.pop(c["slug"], c) for c in stored_campaigns] + list(by_slug.values())
    return parse_catalog({"organization": org_doc, "campaigns": ordered}, source, texts)


# --- the audit log's old and new values -------------------------------------------------------------


def _flat(c: Campaign) -> dict:
    """A campaign as named fields (``en.title``, ``keywords``...), for comparing and for the audit log."""
    out: dict = {"goal": c.goal, "active": c.active, "broadcast_stop_notice": c.broadcast_stop_notice,
                 "keywords": [[c.spelled.get(w, w), lang] for w, lang in c.keywords.items()]}
    for lang in LANGUAGES:
        t = c.texts.get(lang)
        if t is not None:
            out.update({f"{lang}.title": t.title, f"{lang}.summary": t.summary, f"{lang}.statement": t.statement})
    return out


def _flat_org(o: Organization) -> dict:
    out: dict = {"name": o.name, "help_contact": o.help_contact, "default_campaign": o.default_campaign}
    for lang in o.program:
        out.update({f"{lang}.program": o.program[lang], f"{lang}.frequency": o.frequency[lang]})
    return out


def _diff(before: dict, after: dict) -> list[str]:
    return [k for k in after if before.get(k) != after[k]] + [k for k in before if k not in after]


def _old_new(before: dict, after: dict) -> dict:
    changed = _diff(before, after)
    return {"old": {k: before.get(k) for k in changed}, "new": {k: after.get(k) for k in changed}}


def audit_changes(detail: str | None) -> list[tuple[str, object, object]] | None:
    """An audit entry's detail as (field, old, new) rows, when it records a campaign change."""
    try:
        data = json.loads(detail or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or not ("old" in data or "new" in data):
        return None
    old, new = data.get("old") or {}, data.get("new") or {}
    return [(k, old.get(k), new.get(k)) for k in dict.fromkeys([*old, *new])]
