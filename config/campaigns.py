"""Campaign data and the system text catalogs: parsed, validated, immutable.

Campaigns come as the campaign file's shape (a TOML file, the database's rows read back, a console
form or an API body: the same dicts), and one set of rules checks them all: every problem found is
reported at once, in words that name the campaign and the field, so a staff member can fix a file or
a form without reading Python. The inverse, ``document`` and ``dumps``, writes a catalog back as a
campaign file. Nothing here touches the database (storage reads and writes the rows).
"""

from __future__ import annotations

import difflib
import functools
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Collection, Mapping

import tomli_w

from config import gsm
from config.keywords import RESERVED, normalize_keyword
from config.opt_outs import OptOutPhrases, parse_opt_outs
from config.settings import SHIPPED_CAMPAIGNS, SHIPPED_OPT_OUTS, TEXTS_DIR

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
    spelled: Mapping[str, str] = field(default_factory=dict)  # normalised keyword -> as staff wrote it

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
    opt_outs: OptOutPhrases = field(default_factory=OptOutPhrases)  # opt-outs in plain words

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

    def template(self, key: str, language: str, variant: str | None = None) -> str:
        """The system text ``key`` in ``language``; a channel's own wording (``key.variant``) first."""
        texts = self.texts.get(language) or self.texts["en"]
        return (variant and texts.get(f"{key}.{variant}")) or texts[key]


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


class Problem(str):
    """One problem found in campaign data: the sentence a person reads, plus the field it is about
    ("goal", "keywords.es", "en.summary", ...; "" when it is about no single field), so that a form
    can show it beside that field. It is a ``str``: lists of problems print, compare and serialise as
    their sentences."""

    field: str

    def __new__(cls, text: str, field: str = "") -> "Problem":
        self = super().__new__(cls, text)
        self.field = field
        return self


# The keys each table of the campaign file may have; anything else is a mistake to report, not ignore.
TOP_KEYS = ("organization", "campaigns")
ORGANIZATION_KEYS = ("name", "help_contact", "default_campaign", *LANGUAGES)
ORGANIZATION_TEXT_KEYS = ("program", "frequency")
CAMPAIGN_KEYS = ("slug", "goal", "active", "broadcast_stop_notice", "keywords", *LANGUAGES)
CAMPAIGN_TEXT_KEYS = ("title", "summary", "statement")
MAX_GOAL = 1_000_000_000
MAX_SLUG = 64  # signatures and broadcasts name their campaign in 64 characters
MAX_KEYWORD = 32


def _unknown_keys(table: dict, known: tuple[str, ...], where: str, problems: list[str], field: str = "") -> None:
    for key in table:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"the keys here are {', '.join(known)}"
        problems.append(Problem(f"{where}: unknown key '{key}' ({hint})", field or str(key)))


def _lang_table(raw: dict, where: str, fields: tuple[str, ...], problems: list[str]) -> dict[str, dict]:
    out = {}
    for lang in LANGUAGES:
        table = raw.get(lang)
        if not isinstance(table, dict):
            problems.append(Problem(f"{where}: the {lang} translation is missing (add a [{where}.{lang}] table)", lang))
            continue
        for name in fields:
            value = table.get(name)
            if not isinstance(value, str) or not value.strip():
                problems.append(Problem(f"{where}.{lang}: '{name}' is missing or empty", f"{lang}.{name}"))
        _unknown_keys(table, fields, f"{where}.{lang}", problems, f"{lang}")
        out[lang] = table
    return out


def valid_slug(slug) -> bool:
    return isinstance(slug, str) and bool(slug) and slug == slug.lower() and \
        all(c.isascii() and (c.isalnum() or c == "-") for c in slug)


def load_opt_outs(path: Path = SHIPPED_OPT_OUTS) -> OptOutPhrases:
    """The opt-outs in plain words (config/opt_outs.toml), every problem in it reported at once."""
    phrases, problems = parse_opt_outs(read_file(path), LANGUAGES)
    if problems:
        raise CampaignFileError(path, problems)
    return phrases


@functools.lru_cache(maxsize=1)
def _shipped_opt_outs() -> OptOutPhrases:
    return load_opt_outs()


def parse_catalog(data: dict, source: Path | str, texts: Mapping[str, Mapping[str, str]], *,
                  other_slugs: Collection[str] = (), opt_outs: OptOutPhrases | None = None) -> Catalog:
    """The catalog that ``data`` (a campaign file as TOML reads it, or the same shape from the database
    or a form) describes; CampaignFileError with every problem found, in words for the person who
    wrote it. ``other_slugs``: campaigns that exist besides these (in the database, when a file or a
    form brings only some): the organization's default campaign may be one of them."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise CampaignFileError(source, [Problem("the campaign data must be a table of keys and values")])
    org_raw = data.get("organization")
    if not isinstance(org_raw, dict):
        raise CampaignFileError(source, [Problem("the [organization] table is missing", "organization")])
    _unknown_keys(data, TOP_KEYS, "the file", problems)
    for name in ("name", "help_contact"):
        if not isinstance(org_raw.get(name), str) or not org_raw[name].strip():
            problems.append(Problem(f"organization: '{name}' is missing or empty", f"organization.{name}"))
    _unknown_keys(org_raw, ORGANIZATION_KEYS, "organization", problems)
    org_langs = _lang_table(org_raw, "organization", ORGANIZATION_TEXT_KEYS, problems)

    campaigns: dict[str, Campaign] = {}
    keywords: dict[str, tuple[str, str]] = {}
    raw_campaigns = data.get("campaigns")
    if not isinstance(raw_campaigns, list) or not raw_campaigns:
        problems.append(Problem("no campaign is defined (add a [[campaigns]] table)", "campaigns"))
        raw_campaigns = []
    for i, raw in enumerate(raw_campaigns, 1):
        if not isinstance(raw, dict):
            problems.append(Problem(f"campaign #{i} is not a table"))
            continue
        slug = raw.get("slug")
        where = f"campaign '{slug}'" if isinstance(slug, str) else f"campaign #{i}"
        if not valid_slug(slug):
            problems.append(Problem(f"{where}: 'slug' must be lower-case letters, digits and dashes, like end-scomm",
                                    "slug"))
            continue
        if len(slug) > MAX_SLUG:
            problems.append(Problem(f"{where}: 'slug' must be at most {MAX_SLUG} characters", "slug"))
            continue
        if slug in campaigns:
            problems.append(Problem(f"{where}: the slug is used by two campaigns", "slug"))
            continue
        _unknown_keys(raw, CAMPAIGN_KEYS, where, problems)
        goal = raw.get("goal", 0)
        if not isinstance(goal, int) or isinstance(goal, bool) or goal < 0:
            problems.append(Problem(f"{where}: 'goal' must be a whole number of signatures", "goal"))
            goal = 0
        elif goal > MAX_GOAL:
            problems.append(Problem(f"{where}: 'goal' must be at most {MAX_GOAL:,} signatures", "goal"))
            goal = 0
        active = raw.get("active", True)
        if not isinstance(active, bool):
            problems.append(Problem(f"{where}: 'active' must be true or false", "active"))
            active = True
        stop_notice = raw.get("broadcast_stop_notice", True)
        if not isinstance(stop_notice, bool):
            problems.append(Problem(f"{where}: 'broadcast_stop_notice' must be true or false", "broadcast_stop_notice"))
            stop_notice = True
        kw_raw = raw.get("keywords")
        kws: dict[str, str] = {}
        spelled: dict[str, str] = {}
        if not isinstance(kw_raw, dict) or not kw_raw:
            problems.append(Problem(f"{where}: no keywords (add a [campaigns.keywords] table, like SCOMM = \"en\")",
                                    "keywords"))
            kw_raw = {}
        for word, lang in kw_raw.items():
            norm = normalize_keyword(str(word))
            field = f"keywords.{lang}" if lang in LANGUAGES else "keywords"
            if lang not in LANGUAGES:
                problems.append(Problem(f"{where}: keyword {word} has language {lang!r}; use one of "
                                        f"{', '.join(LANGUAGES)}", field))
            elif not norm or " " in norm:
                problems.append(Problem(f"{where}: keyword {word!r} must be one word of letters or digits", field))
            elif max(len(norm), len(str(word).strip())) > MAX_KEYWORD:
                problems.append(Problem(f"{where}: keyword {word} is longer than {MAX_KEYWORD} characters", field))
            elif norm in RESERVED:
                problems.append(Problem(f"{where}: {word} is reserved for opt-out, opt-in, help or language and "
                                        f"cannot be a campaign keyword", field))
            elif norm in keywords:
                other = keywords[norm][0]
                problems.append(Problem(f"{where}: keyword {word} is claimed twice (also by campaign '{other}')"
                                        if other != slug else f"{where}: keyword {word} is listed twice", field))
            else:
                keywords[norm] = (slug, lang)
                kws[norm] = lang
                spelled[norm] = str(word).strip()
        langs = _lang_table(raw, where.replace("campaign ", "campaigns.").replace("'", ""), CAMPAIGN_TEXT_KEYS,
                            problems)
        ctexts = {}
        for lang, table in langs.items():
            if not all(isinstance(table.get(name), str) for name in CAMPAIGN_TEXT_KEYS):
                continue
            ctexts[lang] = CampaignText(table["title"].strip(), table["summary"].strip(), table["statement"].strip())
            summary = gsm.to_gsm(ctexts[lang].summary)
            enc, n = gsm.segments(summary)
            if enc != "GSM-7" or n > SMS_SUMMARY_MAX_SEGMENTS:
                problems.append(Problem(
                    f"{where} ({lang}): the SMS summary takes {n} {enc} segments ({len(summary)} characters); "
                    f"it must fit {SMS_SUMMARY_MAX_SEGMENTS} GSM-7 segments (306 characters)", f"{lang}.summary"))
        campaigns[slug] = Campaign(slug, goal, active, MappingProxyType(kws), MappingProxyType(ctexts), stop_notice,
                                   MappingProxyType(spelled))

    default = org_raw.get("default_campaign") or (next(iter(campaigns)) if campaigns else None)
    if default is not None and default not in campaigns and default not in other_slugs:
        problems.append(Problem(f"organization: default_campaign '{default}' is not a campaign in this file",
                                "organization.default_campaign"))
    elif default in campaigns and not campaigns[default].active:
        problems.append(Problem(f"campaign '{default}': the default campaign cannot be closed (active = false); "
                                f"name another campaign as default_campaign first", "active"))
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
                   MappingProxyType(keywords), opt_outs=opt_outs if opt_outs is not None else _shipped_opt_outs())


def read_file(path: Path | str) -> dict:
    """A campaign file's data as TOML reads it; CampaignFileError when it cannot be read or parsed."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignFileError(path, [Problem(f"cannot be read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise CampaignFileError(path, [Problem("cannot be read: it is not UTF-8 text")]) from None
    try:
        return tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignFileError(path, [Problem(f"is not valid TOML: {exc}")]) from None


def load_catalog(path: Path | str | None = None, texts_dir: Path = TEXTS_DIR,
                  opt_outs_path: Path = SHIPPED_OPT_OUTS) -> Catalog:
    path = Path(path) if path else SHIPPED_CAMPAIGNS
    return parse_catalog(read_file(path), path, load_texts(texts_dir), opt_outs=load_opt_outs(opt_outs_path))


# --- back to the file's shape ----------------------------------------------------------------------


def campaign_document(campaign: Campaign) -> dict:
    """One campaign as the campaign file (and the staff API) spells it."""
    return {
        "slug": campaign.slug,
        "goal": campaign.goal,
        "active": campaign.active,
        "broadcast_stop_notice": campaign.broadcast_stop_notice,
        "keywords": {campaign.spelled.get(word, word): lang for word, lang in campaign.keywords.items()},
        **{lang: {"title": t.title, "summary": t.summary, "statement": t.statement}
           for lang, t in campaign.texts.items()},
    }


def organization_document(org: Organization) -> dict:
    return {
        "name": org.name,
        "help_contact": org.help_contact,
        "default_campaign": org.default_campaign,
        **{lang: {"program": org.program[lang], "frequency": org.frequency[lang]} for lang in org.program},
    }


def document(catalog: Catalog) -> dict:
    """The whole catalog as a campaign file's data: ``parse_catalog(document(c))`` gives ``c`` back."""
    return {"organization": organization_document(catalog.organization),
            "campaigns": [campaign_document(c) for c in catalog.campaigns.values()]}


FILE_HEADER = """\
# firma campaign file, written by `firma campaigns export`. Edit it and load it back with
# `firma campaigns import FILE`: every field is described in docs/campaigns.md. Keywords with
# letters outside A-Z are quoted, like "SUEÑO" = "es".
"""


def dumps(data: dict) -> str:
    """A campaign file's text for ``data`` (multi-line texts stay multi-line)."""
    return FILE_HEADER + "\n" + tomli_w.dumps(data, multiline_strings=True)
