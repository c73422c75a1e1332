"""Reply keys -> the words a member reads, in their language.

The texts live in data (the campaign catalog and config/texts); a channel picks its own wording
(``variant``: keys ending in ".<variant>" replace the plain ones), whether the campaign's full
statement fits (``full_intro``), how replies that share a message are joined and how text is escaped
(bots/channels/). Nothing here knows a channel.
"""

from __future__ import annotations

from typing import Callable, Iterable

from bots.engine import Reply
from config.campaigns import Catalog


def _params(reply: Reply, language: str, catalog: Catalog) -> dict[str, str]:
    org = catalog.organization
    campaign = catalog.campaigns.get(reply.campaign or "") or catalog.default_campaign
    values = {
        "program": org.program.get(language) or org.program["en"],
        "frequency": org.frequency.get(language) or org.frequency["en"],
        "help_contact": org.help_contact,
        "organization": org.name,
        "title": campaign.text(language).title,
        "keyword": campaign.keyword(language),
        "other_keyword": campaign.keyword(next((l for l in catalog.languages if l != language), language)),
    }
    values.update({k: str(v) for k, v in reply.params.items()})
    return values


def render_text(reply: Reply, language: str, catalog: Catalog, variant: str | None = None,
                full_intro: bool = False) -> str:
    """One reply as plain text (not yet escaped or folded). The campaign's introduction is its
    summary, or with ``full_intro`` its title, summary and full statement."""
    if reply.key == "campaign_intro":
        campaign = catalog.campaigns.get(reply.campaign or "") or catalog.default_campaign
        text = campaign.text(language)
        if not full_intro:
            return text.summary
        return f"{text.title}\n\n{text.summary}\n\n{text.statement}"
    return catalog.template(reply.key, language, variant).format_map(_params(reply, language, catalog))


def compose(replies: Iterable[Reply], language: str, catalog: Catalog, *, variant: str | None, full_intro: bool,
            separator: str, escape: Callable[[Reply, str], str] | None = None) -> list[str]:
    """The messages to send, in order: each reply rendered (and escaped), those marked ``join`` added
    to the message before them with ``separator``."""
    messages: list[str] = []
    for reply in replies:
        text = render_text(reply, language, catalog, variant, full_intro)
        if escape is not None:
            text = escape(reply, text)
        if reply.join and messages:
            messages[-1] += separator + text
        else:
            messages.append(text)
    return messages


def split_long(text: str, limit: int) -> list[str]:
    """Split at paragraph, then line, then word boundaries so no part exceeds ``limit`` characters."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = max(rest.rfind("\n\n", 0, limit), rest.rfind("\n", 0, limit), rest.rfind(" ", 0, limit))
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts
