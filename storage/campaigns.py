"""The campaign catalog's rows: read whole, as the campaign file's data (config parses and checks it);
written a campaign at a time from checked values; and the catalog version that every process watches.

Every write transaction starts with ``bump_version``: it locks the organization row, so campaign
edits from several processes take turns, and each one sees the others' committed work before it
checks keywords and slugs against them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from config.campaigns import Campaign, Organization
from storage.models import CampaignKeywordRow, CampaignRow, CampaignTextRow, OrganizationRow, OrganizationTextRow
from storage.repository import _insert

ORGANIZATION_ID = 1


def version(session: Session) -> int | None:
    """The catalog's version; None when no campaign was ever stored (the database is to be seeded)."""
    return session.scalar(select(OrganizationRow.catalog_version).where(OrganizationRow.id == ORGANIZATION_ID))


def read(session: Session) -> tuple[int, dict] | None:
    """(version, the catalog as a campaign file's data), or None before seeding. Reads five tables;
    the caller reads the version again afterwards when it is not in one snapshot (see bots.catalog)."""
    org = session.execute(select(OrganizationRow).where(OrganizationRow.id == ORGANIZATION_ID)).scalar_one_or_none()
    if org is None:
        return None
    organization: dict = {"name": org.name, "help_contact": org.help_contact,
                          "default_campaign": org.default_campaign}
    for row in session.execute(select(OrganizationTextRow).order_by(OrganizationTextRow.language)).scalars():
        organization[row.language] = {"program": row.program, "frequency": row.frequency}
    campaigns: dict[int, dict] = {}
    for c in session.execute(select(CampaignRow).order_by(CampaignRow.id)).scalars():
        campaigns[c.id] = {"slug": c.slug, "goal": c.goal, "active": c.active,
                           "broadcast_stop_notice": c.broadcast_stop_notice, "keywords": {}}
    for k in session.execute(select(CampaignKeywordRow).order_by(CampaignKeywordRow.campaign_id,
                                                                 CampaignKeywordRow.position)).scalars():
        if k.campaign_id in campaigns:
            campaigns[k.campaign_id]["keywords"][k.spelled] = k.language
    for t in session.execute(select(CampaignTextRow).order_by(CampaignTextRow.campaign_id,
                                                              CampaignTextRow.language)).scalars():
        if t.campaign_id in campaigns:
            campaigns[t.campaign_id][t.language] = {"title": t.title, "summary": t.summary, "statement": t.statement}
    return org.catalog_version, {"organization": organization, "campaigns": list(campaigns.values())}


def claim_seed(session: Session, org: Organization, now: datetime) -> bool:
    """Insert the organization row (version 1) unless one exists: True when this transaction seeds the
    catalog. Two processes seeding at once: one insert wins, the other waits on the key and gets False."""
    stmt = (_insert(session, OrganizationRow)
            .values(id=ORGANIZATION_ID, name=org.name, help_contact=org.help_contact,
                    default_campaign=org.default_campaign, catalog_version=1, updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(OrganizationRow.id))
    if session.execute(stmt).first() is None:
        return False
    _save_organization_texts(session, org)
    return True


def bump_version(session: Session, now: datetime) -> int | None:
    """The next catalog version, with the organization row locked until commit (None: not seeded)."""
    return session.execute(update(OrganizationRow).where(OrganizationRow.id == ORGANIZATION_ID)
                           .values(catalog_version=OrganizationRow.catalog_version + 1, updated_at=now)
                           .returning(OrganizationRow.catalog_version)).scalar_one_or_none()


def save_organization(session: Session, org: Organization) -> None:
    session.execute(update(OrganizationRow).where(OrganizationRow.id == ORGANIZATION_ID)
                    .values(name=org.name, help_contact=org.help_contact, default_campaign=org.default_campaign))
    session.execute(delete(OrganizationTextRow))
    _save_organization_texts(session, org)


def _save_organization_texts(session: Session, org: Organization) -> None:
    rows = [{"language": lang, "program": org.program[lang], "frequency": org.frequency[lang]} for lang in org.program]
    if rows:
        session.execute(insert(OrganizationTextRow), rows)


def save_campaigns(session: Session, campaigns: list[Campaign], now: datetime) -> None:
    """Insert or replace these campaigns (slugs stay; texts and keywords are written anew). The keywords
    of all of them are removed before any is written, so a keyword may move from one to another."""
    if not campaigns:
        return
    ids = {slug: campaign_id for slug, campaign_id in session.execute(
        select(CampaignRow.slug, CampaignRow.id).where(CampaignRow.slug.in_([c.slug for c in campaigns])))}
    if ids:
        session.execute(delete(CampaignKeywordRow).where(CampaignKeywordRow.campaign_id.in_(list(ids.values()))))
        session.execute(delete(CampaignTextRow).where(CampaignTextRow.campaign_id.in_(list(ids.values()))))
    for c in campaigns:
        values = {"goal": c.goal, "active": c.active, "broadcast_stop_notice": c.broadcast_stop_notice,
                  "updated_at": now}
        if c.slug in ids:
            session.execute(update(CampaignRow).where(CampaignRow.id == ids[c.slug]).values(**values))
        else:
            ids[c.slug] = session.execute(insert(CampaignRow).values(slug=c.slug, created_at=now, **values)
                                          .returning(CampaignRow.id)).scalar_one()
        campaign_id = ids[c.slug]
        session.execute(insert(CampaignTextRow), [
            {"campaign_id": campaign_id, "language": lang, "title": t.title, "summary": t.summary,
             "statement": t.statement} for lang, t in c.texts.items()])
        session.execute(insert(CampaignKeywordRow), [
            {"keyword": word, "campaign_id": campaign_id, "language": lang, "spelled": c.spelled.get(word, word),
             "position": i} for i, (word, lang) in enumerate(c.keywords.items())])
