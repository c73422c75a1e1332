"""Reply keys -> the words a member reads, for a language and a channel.

SMS: plain text folded to GSM-7 where possible (``á`` -> ``a``, curly quotes -> straight), one string
per message. Telegram: HTML (parse_mode=HTML) with every value escaped, so a name like ``<b>&co``
arrives as typed.
"""

from __future__ import annotations

import html
from typing import Iterable

from bots.engine import Reply
from config.campaigns import Catalog
from config.gsm import to_gsm

TELEGRAM_LIMIT = 4096


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


def render_text(reply: Reply, language: str, channel: str, catalog: Catalog) -> str:
    """One reply as plain text (not yet escaped or folded)."""
    if reply.key == "campaign_intro":
        campaign = catalog.campaigns.get(reply.campaign or "") or catalog.default_campaign
        text = campaign.text(language)
        if channel == "sms":
            return text.summary
        return f"{text.title}\n\n{text.summary}\n\n{text.statement}"
    return catalog.template(reply.key, language, channel).format_map(_params(reply, language, catalog))


def render(replies: Iterable[Reply], language: str, channel: str, catalog: Catalog) -> list[str]:
    """The messages to send, in order; replies marked ``join`` share the message before them."""
    messages: list[str] = []
    for reply in replies:
        text = render_text(reply, language, channel, catalog)
        if channel == "telegram":
            text = html.escape(text, quote=False)
            if reply.key == "campaign_intro":
                title, _, rest = text.partition("\n\n")
                text = f"<b>{title}</b>\n\n{rest}"
        if reply.join and messages:
            messages[-1] += ("\n\n" if channel == "telegram" else " ") + text
        else:
            messages.append(text)
    if channel == "sms":
        return [to_gsm(m) for m in messages]
    return [part for m in messages for part in split_long(m, TELEGRAM_LIMIT)]


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
