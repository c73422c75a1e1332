"""The campaign file and the system text catalogs: loaded once at start-up, validated, immutable.

A staff member edits ``campaigns.toml``; every problem found is reported at once, in words that
name the campaign and the field, so they can fix the file without reading Python.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from config import gsm
from config.keywords import RESERVED, normalize_keyword
from config.settings import SHIPPED_CAMPAIGNS, TEXTS_DIR

LANGUAGES = ("en", "es")
SMS_SUMMARY_MAX_SEGMENTS = 2


class CampaignFileError(ValueError):
    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class CampaignText:
    title: str
    summary: str  # SMS: at most two GSM-7 segments once rendered
    statement: str  # the petition's own words, shown in full where there is room (Telegram)


@dataclass(frozen=True)
class Campaign:
    slug: str
    goal: int
    active: bool
    keywords: Mapping[str, str]  # normalised keyword -> language
    texts: Mapping[str, CampaignText]
    broadcast_stop_notice: bool = True

    def keyword(self, language: str) -> str:
        """The keyword to tell a member who speaks ``language`` (the first one listed for it)."""
        for word, lang in self.keywords.items():
            if lang == language:
                return word
        return next(iter(self.keywords))

    def text(self, language: str) -> CampaignText:
        return self.texts.get(language) or self.texts["en"]


@dataclass(frozen=True)
class Organization:
    name: str
    help_contact: str
    default_campaign: str
    program: Mapping[str, str]
    frequency: Mapping[str, str]


@dataclass(frozen=True)
class Catalog:
    organization: Organization
    campaigns: Mapping[str, Campaign]
    texts: Mapping[str, Mapping[str, str]]
    keywords: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # keyword -> (slug, language)
    languages: tuple[str, ...] = LANGUAGES

    @property
    def default_campaign(self) -> Campaign:
        return self.campaigns[self.organization.default_campaign]

    @property
    def active_campaigns(self) -> list[Campaign]:
        return [c for c in self.campaigns.values() if c.active]

    def phrase(self, key: str, language: str, **values) -> str:
        """A text of texts/public.LANG.toml (not a reply), filled in: the delivery package, the flyer
        and the public page."""
        texts = self.texts.get(language) or self.texts["en"]
        text = texts[f"public.{key}"]
        return text.format(**values) if values else text

    def template(self, key: str, language: str, channel: str) -> str:
        texts = self.texts.get(language) or self.texts["en"]
        return texts.get(f"{key}.{channel}") or texts[key]


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def load_texts(directory: Path = TEXTS_DIR) -> dict[str, dict[str, str]]:
    problems: list[str] = []
    texts: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        path = directory / f"{lang}.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{path.name}: cannot be read: {exc}")
            continue
        texts[lang] = {str(k): str(v) for k, v in data.items()}
        public = directory / f"public.{lang}.toml"  # the delivery package, flyer and public page: "public.KEY"
        if public.exists():
            try:
                extra = tomllib.loads(public.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                problems.append(f"{public.name}: cannot be read: {exc}")
                continue
            texts[lang].update({f"public.{k}": str(v) for k, v in extra.items()})
    if problems:
        raise CampaignFileError(directory, problems)
    reference = texts["en"]
    for lang, table in texts.items():
        for key in reference.keys() - table.keys():
            problems.append(f"{lang}.toml: the text '{key}' is missing (en.toml has it)")
        for key in table.keys() - reference.keys():
            problems.append(f"{lang}.toml: the text '{key}' is not in en.toml")
        for key in reference.keys() & table.keys():
            if _placeholders(reference[key]) != _placeholders(table[key]):
                problems.append(
                    f"{lang}.toml: '{key}' uses {sorted(_placeholders(table[key]))}, "
                    f"en.toml uses {sorted(_placeholders(reference[key]))}"
                )
    if problems:
        raise CampaignFileError(directory, problems)
    return texts


def _lang_table(raw: dict, where: str, fields: tuple[str, ...], problems: list[str]) -> dict[str, dict]:
    out = {}
    for lang in LANGUAGES:
        table = raw.get(lang)
        if not isinstance(table, dict):
            problems.append(f"{where}: the {lang} translation is missing (add a [{where}.{lang}] table)")
            continue
        for name in fields:
            value = table.get(name)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{where}.{lang}: '{name}' is missing or empty")
        out[lang] = table
    return out


def parse_catalog(data: dict, source: Path | str, texts: dict[str, dict[str, str]]) -> Catalog:
    problems: list[str] = []
    org_raw = data.get("organization")
    if not isinstance(org_raw, dict):
        raise CampaignFileError(source, ["the [organization] table is missing"])
    for name in ("name", "help_contact"):
        if not isinstance(org_raw.get(name), str) or not org_raw[name].strip():
            problems.append(f"organization: '{name}' is missing or empty")
    org_langs = _lang_table(org_raw, "organization", ("program", "frequency"), problems)

    campaigns: dict[str, Campaign] = {}
    keywords: dict[str, tuple[str, str]] = {}
    raw_campaigns = data.get("campaigns")
    if not isinstance(raw_campaigns, list) or not raw_campaigns:
        problems.append("no campaign is defined (add a [[campaigns]] table)")
        raw_campaigns = []
    for i, raw in enumerate(raw_campaigns, 1):
        if not isinstance(raw, dict):
            problems.append(f"campaign #{i} is not a table")
            continue
        slug = raw.get("slug")
        where = f"campaign '{slug}'" if isinstance(slug, str) else f"campaign #{i}"
        if not isinstance(slug, str) or not slug or not all(c.isascii() and (c.isalnum() or c == "-") for c in slug) \
                or slug != slug.lower():
            problems.append(f"{where}: 'slug' must be lower-case letters, digits and dashes, like end-scomm")
            continue
        if slug in campaigns:
            problems.append(f"{where}: the slug is used by two campaigns")
            continue
        goal = raw.get("goal", 0)
        if not isinstance(goal, int) or isinstance(goal, bool) or goal < 0:
            problems.append(f"{where}: 'goal' must be a whole number of signatures")
            goal = 0
        active = raw.get("active", True)
        if not isinstance(active, bool):
            problems.append(f"{where}: 'active' must be true or false")
            active = True
        stop_notice = raw.get("broadcast_stop_notice", True)
        if not isinstance(stop_notice, bool):
            problems.append(f"{where}: 'broadcast_stop_notice' must be true or false")
            stop_notice = True
        kw_raw = raw.get("keywords")
        kws: dict[str, str] = {}
        if not isinstance(kw_raw, dict) or not kw_raw:
            problems.append(f"{where}: no keywords (add a [campaigns.keywords] table, like SCOMM = \"en\")")
            kw_raw = {}
        for word, lang in kw_raw.items():
            norm = normalize_keyword(str(word))
            if lang not in LANGUAGES:
                problems.append(f"{where}: keyword {word} has language {lang!r}; use one of {', '.join(LANGUAGES)}")
            elif not norm or " " in norm:
                problems.append(f"{where}: keyword {word!r} must be one word of letters or digits")
            elif norm in RESERVED:
                problems.append(f"{where}: {word} is reserved for opt-out, opt-in, help or language and cannot be a campaign keyword")
            elif norm in keywords:
                other = keywords[norm][0]
                problems.append(f"{where}: keyword {word} is claimed twice (also by campaign '{other}')"
                                if other != slug else f"{where}: keyword {word} is listed twice")
            else:
                keywords[norm] = (slug, lang)
                kws[norm] = lang
        langs = _lang_table(raw, where.replace("campaign ", "campaigns.").replace("'", ""),
                            ("title", "summary", "statement"), problems)
        ctexts = {}
        for lang, table in langs.items():
            try:
                ctexts[lang] = CampaignText(str(table["title"]).strip(), str(table["summary"]).strip(),
                                            str(table["statement"]).strip())
            except KeyError:
                continue
            summary = gsm.to_gsm(ctexts[lang].summary)
            enc, n = gsm.segments(summary)
            if enc != "GSM-7" or n > SMS_SUMMARY_MAX_SEGMENTS:
                problems.append(
                    f"{where} ({lang}): the SMS summary takes {n} {enc} segments ({len(summary)} characters); "
                    f"it must fit {SMS_SUMMARY_MAX_SEGMENTS} GSM-7 segments (306 characters)"
                )
        campaigns[slug] = Campaign(slug, goal, active, MappingProxyType(kws), MappingProxyType(ctexts), stop_notice)

    default = org_raw.get("default_campaign") or (next(iter(campaigns)) if campaigns else None)
    if default is not None and default not in campaigns:
        problems.append(f"organization: default_campaign '{default}' is not a campaign in this file")
    if problems:
        raise CampaignFileError(source, problems)
    org = Organization(
        name=org_raw["name"].strip(),
        help_contact=org_raw["help_contact"].strip(),
        default_campaign=default,
        program=MappingProxyType({k: v["program"].strip() for k, v in org_langs.items()}),
        frequency=MappingProxyType({k: v["frequency"].strip() for k, v in org_langs.items()}),
    )
    return Catalog(org, MappingProxyType(campaigns),
                   MappingProxyType({k: MappingProxyType(v) for k, v in texts.items()}),
                   MappingProxyType(keywords))


def load_catalog(path: Path | str | None = None, texts_dir: Path = TEXTS_DIR) -> Catalog:
    path = Path(path) if path else SHIPPED_CAMPAIGNS
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignFileError(path, [f"is not valid TOML: {exc}"]) from None
    return parse_catalog(data, path, load_texts(texts_dir))
