"""Read-side service functions shared by the web app and the CLI."""

from __future__ import annotations

from bots.runtime import Runtime
from storage import repository as repo


def campaign_summary(rt: Runtime, slug: str) -> dict | None:
    campaign = rt.catalog.campaigns.get(slug)
    if campaign is None:
        return None
    with rt.db.snapshot() as uow:  # one statement: no transaction needed
        count = repo.signature_count(uow.session, slug)
    return {"slug": slug, "title": campaign.text("en").title, "signatures": count, "goal": campaign.goal}

