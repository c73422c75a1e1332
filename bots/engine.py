"""The conversation engine: pure, channel-agnostic.

``step(state, inbound, catalog, zips) -> Step(state, replies, effects)``. No database, no HTTP, no
clock: everything it needs comes in as arguments and everything it decides goes out as values.
Replies are text keys with parameters (rendered per language and channel elsewhere); effects are
data (``RecordSignature``, ``Consent``) that the service applies in one transaction.

Order of precedence for a message: the provider's own opt-out verdict (Twilio OptOutType), then
STOP and its synonyms and the opt-outs in plain words (config/opt_outs.toml), then YES/SÍ to a
pending "Sign as Ana López, 60601?", then START/HELP and their synonyms, then language switches,
then campaign keywords, then (for a member opted out: nothing more) the answer to the pending
question; what is left is the member's own words, kept for staff (``ForStaff``) and acknowledged at
most once a day with a note that names the member's own campaign's keyword.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from config.campaigns import Catalog
from config.keywords import CONFIRM, DECLINE, HELP, LANGUAGE, OPT_IN, OPT_OUT, RESERVED, SPOKEN_IN, normalize_keyword
from config.opt_outs import OptOutMatch

IDLE = "idle"
AWAITING_NAME = "awaiting_name"
AWAITING_ZIP = "awaiting_zip"
AWAITING_CONFIRM = "awaiting_confirm"  # "Sign as Ana López, 60601? Reply YES, or send your full name."
STEPS = (IDLE, AWAITING_NAME, AWAITING_ZIP, AWAITING_CONFIRM)

MAX_INVALID = 3
NAME_MIN, NAME_MAX = 2, 100


@dataclass(frozen=True)
class Inbound:
    channel: str  # a channel's name (bots.channels)
    address: str  # E.164 phone number, or Telegram user id
    text: str = ""
    provider_id: str | None = None  # MessageSid, update_id: a retry carries the same one
    language_hint: str | None = None  # Telegram's language_code
    command: str | None = None  # start | stop | help | language (Telegram commands and buttons)
    argument: str | None = None  # /start <slug>, /language <code>
    provider_opt: str | None = None  # Twilio OptOutType: STOP | START | HELP
    media: bool = False  # a photo, sticker, voice note or MMS: nothing we can read as text
    simulated: bool = False
    extras: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Signed:
    """What a signature records: the campaign, the name, the ZIP and the place it gave. The person's
    latest one comes in State.last_signed: a second campaign offers to sign with it."""

    campaign: str
    name: str
    zip_code: str
    city: str
    state: str
    timezone: str | None

    @property
    def usable(self) -> bool:  # a forgotten member's signatures keep no name or ZIP
        return bool(self.name and self.zip_code)


@dataclass(frozen=True)
class State:
    language: str = "en"
    known: bool = False  # False until the member has written once (the language hint applies then)
    opted_out: bool = False
    disclosed: bool = False  # the SMS opt-in disclosure has been sent
    campaign: str | None = None
    step: str = IDLE
    pending_name: str | None = None
    invalid_count: int = 0
    signed: frozenset[str] = frozenset()
    last_signed: Signed | None = None  # read with the rest, under the member's lock
    acked_today: bool = False  # the inbox acknowledged their own words today (one note a day)


@dataclass(frozen=True)
class Reply:
    key: str
    params: Mapping[str, str] = field(default_factory=dict)
    campaign: str | None = None
    join: bool = False  # same message as the reply before it


@dataclass(frozen=True)
class RecordSignature(Signed):
    """The effect: record this signature."""


@dataclass(frozen=True)
class Consent:
    kind: str  # opt_in | opt_out | help
    cause: str  # the keyword, command or OptOutType that caused it
    campaign: str | None = None


@dataclass(frozen=True)
class ForStaff:
    """The effect: keep the member's own words for staff (the inbox)."""

    text: str
    media: bool = False
    campaign: str | None = None  # the campaign the member belongs to, if any


Effect = RecordSignature | Consent | ForStaff


@dataclass(frozen=True)
class Step:
    state: State
    replies: tuple[Reply, ...] = ()
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class ZipInfo:
    zip_code: str
    city: str
    state: str
    timezone: str | None


ZipLookup = Callable[[str], "ZipInfo | None"]

_ZIP = re.compile(r"([0-9]{5})(?:-([0-9]{4}))?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b]")  # control characters, and the zero-width space
_SPACES = re.compile(r"\s+")
_JOINERS = "\u200c\u200d"  # zero-width (non-)joiner: part of the spelling between letters (Persian, Indic)


def clean_name(text: str) -> str:
    """The name as stored and shown: NFC, single spaces, and no invisible format characters (Unicode
    Cf: bidi marks, overrides and isolates, soft hyphens, tags...), which could make a name look like
    another to staff or hide a formula from the export's guard. A joiner between two letters stays."""
    text = _CONTROL.sub(" ", unicodedata.normalize("NFC", text))
    if not text.isascii():  # NFC again: a mark kept apart by a dropped character now composes
        text = unicodedata.normalize("NFC", _drop_format(text))
    return _SPACES.sub(" ", text).strip()


def _drop_format(text: str) -> str:
    def letter(i: int) -> bool:
        return 0 <= i < len(text) and unicodedata.category(text[i])[0] in "LM"

    return "".join(ch for i, ch in enumerate(text) if unicodedata.category(ch) != "Cf"
                   or (ch in _JOINERS and letter(i - 1) and letter(i + 1)))


def check_name(text: str, catalog: Catalog) -> tuple[str | None, str | None]:
    """(name, None) when ``text`` can be a signer's name, else (None, error key)."""
    name = clean_name(text)
    if len(name) > NAME_MAX:
        return None, "name_too_long"
    word = normalize_keyword(name)
    if word in RESERVED or word in catalog.keywords:
        return None, "name_is_keyword"
    if not any(ch.isalpha() for ch in name):
        return None, "name_no_letters"
    if len(name) < NAME_MIN or sum(ch.isalpha() for ch in name) < NAME_MIN:
        return None, "name_too_short"
    return name, None


_NAME_WORD = re.compile(r"[^\W\d_]+(?:['’.\-][^\W\d_]*)*")  # letters, with a name's ' - . inside or after


def _reads_as_name(text: str, catalog: Catalog) -> str | None:
    """A name given where the ZIP was asked: two words or more, each of letters (and ' - .), no digit."""
    name, error = check_name(text, catalog)
    if error or name is None:
        return None
    parts = name.split(" ")
    if len(parts) < 2 or not all(_NAME_WORD.fullmatch(p) for p in parts):
        return None
    return name


def check_zip(text: str, zips: ZipLookup) -> tuple[ZipInfo | None, str | None, str]:
    """(info, None, zip) for a real US ZIP, else (None, error key, what was read)."""
    candidate = normalize_keyword(text)
    m = _ZIP.fullmatch(candidate)
    if not m:
        return None, "zip_format", candidate
    info = zips(m.group(1))
    if info is None:
        return None, "zip_unknown", m.group(1)
    return info, None, m.group(1)


class Engine:
    """Holds the catalog and the ZIP lookup, both loaded once; ``step`` is the whole behaviour."""

    def __init__(self, catalog: Catalog, zips: ZipLookup):
        self.catalog = catalog
        self.zips = zips

    def step(self, state: State, inbound: Inbound) -> Step:
        return step(state, inbound, self.catalog, self.zips)


def step(state: State, inbound: Inbound, catalog: Catalog, zips: ZipLookup) -> Step:
    first_contact = not state.known
    word = normalize_keyword(inbound.text or "")
    command = inbound.command
    plain = opt_out_in_words(inbound, catalog) if command is None and word not in OPT_OUT else None
    if not state.known:  # their first words, else Telegram's language_code, tell their language
        hint = (inbound.language_hint or "").split("-")[0].lower()
        spoken = SPOKEN_IN.get(word) if command is None else None
        lang = spoken or (plain.language if plain else None) or (hint if hint in catalog.languages else state.language)
        state = replace(state, known=True, language=lang)

    if inbound.provider_opt:
        verdict = _provider_opt(state, inbound, word)
        if verdict is not None and _confirms(verdict.state, command, word, catalog):
            # YES is one of Twilio's own opt-in words: the opt-in is recorded, and the offer answered
            signing = _confirm(verdict.state)
            return Step(signing.state, signing.replies, verdict.effects + signing.effects)
        if verdict is not None:
            return verdict

    if command == "stop" or (command is None and word in OPT_OUT) or plain:
        cause = "/stop" if command else plain.phrase if plain else word
        return Step(_reset(replace(state, opted_out=True)), (Reply("opted_out"),), (Consent("opt_out", cause),))

    if _confirms(state, command, word, catalog):
        return _confirm(state)

    if command is None and word in OPT_IN:
        new = replace(state, opted_out=False, disclosed=True)  # the reply carries the disclosure
        return Step(new, (Reply("opted_in"), *_pending_question(new, join=True)), (Consent("opt_in", word),))

    if command == "help" or (command is None and word in HELP):
        cause = "/help" if command else word
        return Step(state, (Reply("help", campaign=_home(state, catalog)),), (Consent("help", cause),))

    if command == "language" or (command is None and word in LANGUAGE):
        if command:
            wanted = (inbound.argument or "").lower()
            lang = wanted if wanted in catalog.languages else ("es" if state.language == "en" else "en")
        else:
            lang = LANGUAGE[word]
        new = replace(state, language=lang)
        if state.opted_out:
            return Step(new)  # recorded for when they come back; STOP means stop
        follow_up = _pending_question(new, join=False) or (Reply("no_conversation", campaign=_home(new, catalog)),)
        return Step(new, (Reply("language_set"), *follow_up))

    if command == "start" or (command is None and word in catalog.keywords):
        return _start(state, inbound, word, catalog)

    if state.opted_out:
        return Step(state)  # STOP means stop: nothing but the reserved words gets an answer

    if state.step in (AWAITING_NAME, AWAITING_CONFIRM) and state.campaign in catalog.campaigns:
        if inbound.media and not (inbound.text or "").strip():
            return Step(state, (Reply("not_text"), *_pending_question(state, join=True)))
        if state.step == AWAITING_CONFIRM and word in DECLINE:  # not under that name: ask for theirs
            return Step(replace(state, step=AWAITING_NAME), (Reply("ask_name"),))
        name, error = check_name(inbound.text or "", catalog)
        if error:  # not a name: the offer is not repeated, the name is asked for
            return _invalid(replace(state, step=AWAITING_NAME), error, {"text": clean_name(inbound.text or "")[:30]},
                            catalog)
        return Step(replace(state, step=AWAITING_ZIP, pending_name=name, invalid_count=0),
                    (Reply("ask_zip", {"name": name}),))

    if state.step == AWAITING_ZIP and state.campaign in catalog.campaigns:
        if inbound.media and not (inbound.text or "").strip():
            return Step(state, (Reply("not_text"), Reply("zip_format", join=True)))
        info, error, read = check_zip(inbound.text or "", zips)
        if error:
            name = _reads_as_name(inbound.text or "", catalog)
            if name is not None:  # "Ana", then "Ana López" for the ZIP: they meant to give their full name
                return Step(replace(state, pending_name=name, invalid_count=0), (Reply("name_corrected", {"name": name}),))
            return _invalid(state, error, {"zip": read[:10]}, catalog)
        slug = state.campaign
        name = state.pending_name or ""
        effect = RecordSignature(slug, name, info.zip_code, info.city, info.state, info.timezone)
        new = replace(_reset(state), signed=state.signed | {slug}, last_signed=Signed(*astuple_signed(effect)))
        return Step(new, (Reply("signed", {"name": name, "city": info.city, "state": info.state}, campaign=slug),),
                    (effect,))

    # Nothing the conversation can use: the member's own words, for staff. One acknowledgement a day.
    home = _home(state, catalog)
    belongs = state.campaign or (state.last_signed.campaign if state.last_signed else None)
    kept = (ForStaff(clean_text(inbound.text or ""), inbound.media, belongs),)
    if state.acked_today:
        return Step(_reset(state), (), kept)
    replies = [Reply("inbox_ack", campaign=home)]
    if first_contact:  # we cannot know their language yet: offer the other one
        replies.append(Reply("language_offer", campaign=home, join=True))
    return Step(replace(_reset(state), acked_today=True), tuple(replies), kept)


def clean_text(text: str) -> str:
    """A member's message as staff read it: NFC, no control characters but line breaks, no invisible
    format characters (clean_name's rules, line by line)."""
    lines = [clean_name(line) for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip()


def opt_out_in_words(inbound: Inbound, catalog: Catalog) -> OptOutMatch | None:
    """An opt-out in plain words ("please stop texting me", "no más mensajes"; config/opt_outs.toml)."""
    if inbound.command is not None or not inbound.text:
        return None
    return catalog.opt_outs.match(inbound.text)


def _provider_opt(state: State, inbound: Inbound, word: str) -> Step | None:
    """Twilio Advanced Opt-Out already answered the member; record the verdict, send nothing."""
    kind = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}.get(inbound.provider_opt.strip().upper())
    if kind is None:
        return None
    cause = f"OptOutType:{inbound.provider_opt.strip().upper()}" + (f":{word}" if word else "")
    cause = _cause(cause)
    if kind == "opt_out":
        return Step(_reset(replace(state, opted_out=True)), (), (Consent("opt_out", cause),))
    if kind == "opt_in":
        return Step(replace(state, opted_out=False), (), (Consent("opt_in", cause),))
    return Step(state, (), (Consent("help", cause),))


def _start(state: State, inbound: Inbound, word: str, catalog: Catalog) -> Step:
    replies: list[Reply] = []
    effects: list[Effect] = []
    if inbound.command == "start":
        cause = "/start" + (f" {inbound.argument}" if inbound.argument else "")
        slug = (inbound.argument or "").strip().lower() or catalog.organization.default_campaign
        if slug not in catalog.campaigns:
            replies.append(Reply("unknown_campaign"))
            slug = catalog.organization.default_campaign
        lang = state.language
    else:
        cause = word
        slug, lang = catalog.keywords[word]
    cause = _cause(cause)
    state = replace(state, language=lang)
    # After an opt-out, texting a keyword (or pressing Start) is a new request to join: honour it, and
    # say so with the whole disclosure (SMS: program, frequency, rates, HELP/STOP), as at first contact.
    back = (Reply("opted_in", join=True),) if state.opted_out else ()
    if back:
        state = replace(state, opted_out=False, disclosed=True)
        effects.append(Consent("opt_in", cause, slug))
    campaign = catalog.campaigns[slug]
    if not campaign.active:
        return Step(_reset(state), (*replies, Reply("campaign_closed", campaign=slug), *back), tuple(effects))
    if slug in state.signed:
        replies += [Reply("already_signed", campaign=slug), *back]
        if not state.disclosed:  # signed on another chat of theirs: this one's first contact still discloses
            replies.append(Reply("disclosure", join=True))
            effects.append(Consent("opt_in", cause, slug))
            state = replace(state, disclosed=True)
        return Step(_reset(state), tuple(replies), tuple(effects))
    last = state.last_signed
    if last is not None and last.usable:  # signed another campaign: offer the name and ZIP given there
        question, next_step = Reply("offer_signer", {"name": last.name, "zip": last.zip_code}), AWAITING_CONFIRM
    else:
        question, next_step = Reply("ask_name"), AWAITING_NAME
    replies += [Reply("campaign_intro", campaign=slug), question, *back]
    if not state.disclosed:
        replies.append(Reply("disclosure", join=True))
        effects.append(Consent("opt_in", cause, slug))
        state = replace(state, disclosed=True)
    new = replace(state, campaign=slug, step=next_step, pending_name=None, invalid_count=0)
    return Step(new, tuple(replies), tuple(effects))


def _confirms(state: State, command: str | None, word: str, catalog: Catalog) -> bool:
    """YES (or SÍ) to a pending "Sign as Ana López, 60601?"."""
    return state.step == AWAITING_CONFIRM and command is None and word in CONFIRM and not state.opted_out \
        and state.campaign in catalog.campaigns


def _confirm(state: State) -> Step:
    """YES to "Sign as Ana López, 60601?": the signature, with the name, ZIP, city, state and time
    zone recorded before."""
    last = state.last_signed
    if last is None or not last.usable:  # erased meanwhile: ask afresh
        return Step(replace(state, step=AWAITING_NAME), (Reply("ask_name"),))
    slug = state.campaign
    effect = RecordSignature(slug, last.name, last.zip_code, last.city, last.state, last.timezone)
    new = replace(_reset(state), signed=state.signed | {slug}, last_signed=Signed(*astuple_signed(effect)))
    return Step(new, (Reply("signed", {"name": last.name, "city": last.city, "state": last.state}, campaign=slug),),
                (effect,))


def astuple_signed(signed: Signed) -> tuple:
    return (signed.campaign, signed.name, signed.zip_code, signed.city, signed.state, signed.timezone)


def _home(state: State, catalog: Catalog) -> str:
    """The member's own campaign, to name in HELP and the fallback: the one under way, else the one
    they last signed, else the default (a closed campaign is not offered)."""
    for slug in (state.campaign, state.last_signed.campaign if state.last_signed else None):
        campaign = catalog.campaigns.get(slug or "")
        if campaign is not None and campaign.active:
            return slug
    return catalog.organization.default_campaign


def _invalid(state: State, error: str, params: dict, catalog: Catalog) -> Step:
    count = state.invalid_count + 1
    if count >= MAX_INVALID:
        # the question is not asked again: say only that it is over, and how to start again
        return Step(_reset(state), (Reply("too_many_attempts", campaign=state.campaign),))
    return Step(replace(state, invalid_count=count), (Reply(error, params),))


def _pending_question(state: State, join: bool) -> tuple[Reply, ...]:
    if state.step == AWAITING_NAME:
        return (Reply("ask_name", join=join),)
    if state.step == AWAITING_CONFIRM and state.last_signed is not None:
        last = state.last_signed
        return (Reply("offer_signer", {"name": last.name, "zip": last.zip_code}, join=join),)
    if state.step == AWAITING_ZIP:
        return (Reply("ask_zip", {"name": state.pending_name or ""}, join=join),)
    return ()


def _cause(text: str) -> str:
    """A consent cause as stored: member text (a /start argument, a word after OptOutType) loses its
    control characters (PostgreSQL cannot store NUL) and is cut to the column's 64 characters."""
    return clean_name(text)[:64]


def _reset(state: State) -> State:
    return replace(state, campaign=None, step=IDLE, pending_name=None, invalid_count=0)
