"""Campaigns in the staff console: create one, edit one (texts in both languages side by side,
keywords, goal, open or closed, the broadcast stop notice), make one the default.

The form is WTForms (Flask-WTF); it only turns fields into one campaign of the campaign file
(``_campaign_data``) and back. Every check is the service's (bots/campaigns.py, which uses the
campaign file's rules): its problems are shown in the same words as `firma campaigns import` prints
them, each also beside the field it is about. The /staff guard and the CSRF check in webhooks/staff.py
cover every route here (by path); its views declare no role, so they are for admins only.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from wtforms import BooleanField, StringField, TextAreaField

from bots import campaigns as svc
from config import gsm
from config.campaigns import LANGUAGES, SMS_SUMMARY_MAX_SEGMENTS, Problem
from webhooks import runtime
from webhooks.auth import client_ip, csrf_error, current_staff

bp = Blueprint("staff_campaigns", __name__, url_prefix="/staff/campaigns")
bp.register_error_handler(CSRFError, csrf_error)  # the console's "the form expired" page

LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}
_WORDS = re.compile(r"[,;\s]+")
_NUMBER = re.compile(r"[0-9][0-9,_ ]*")


class CampaignForm(FlaskForm):
    slug = StringField("Short name in links (slug)", description="Lower-case letters, digits and dashes, like "
                       "end-scomm. It names the campaign in exports and Telegram links and cannot change later.")
    goal = StringField("Goal", description="Signatures to reach; 0 for no goal.")
    active = BooleanField("Open: members can sign", description="A closed campaign keeps its signatures; its "
                          "keywords answer that the petition is closed.")
    broadcast_stop_notice = BooleanField("Add “Reply STOP to opt out” to SMS broadcasts that lack it")


for _lang in LANGUAGES:  # the same fields in each language firma speaks, shown side by side
    setattr(CampaignForm, f"keywords_{_lang}", StringField(
        f"Keywords ({LANGUAGE_NAMES.get(_lang, _lang)})",
        description="Words members text to sign, separated by commas; the first is the one we tell them."))
    setattr(CampaignForm, f"title_{_lang}", StringField(f"Title ({LANGUAGE_NAMES.get(_lang, _lang)})"))
    setattr(CampaignForm, f"summary_{_lang}", TextAreaField(
        f"SMS summary ({LANGUAGE_NAMES.get(_lang, _lang)})",
        description=f"The first text a member gets: at most {SMS_SUMMARY_MAX_SEGMENTS} SMS segments "
                    f"(306 GSM-7 characters)."))
    setattr(CampaignForm, f"statement_{_lang}", TextAreaField(
        f"Petition text ({LANGUAGE_NAMES.get(_lang, _lang)})",
        description="The petition's own words, shown in full on Telegram."))


def _form_data(doc: dict) -> dict:
    data = {"slug": doc["slug"], "goal": str(doc["goal"]), "active": doc["active"],
            "broadcast_stop_notice": doc["broadcast_stop_notice"]}
    for lang in LANGUAGES:
        data[f"keywords_{lang}"] = ", ".join(w for w, language in doc["keywords"].items() if language == lang)
        for name in ("title", "summary", "statement"):
            data[f"{name}_{lang}"] = doc.get(lang, {}).get(name, "")
    return data


def _goal(raw: str):
    """The goal as a number when it is one ("100,000" too); else as typed, for the service to refuse."""
    raw = (raw or "").strip()
    if not raw:
        return 0
    if _NUMBER.fullmatch(raw):
        return int(re.sub(r"[,_ ]", "", raw))
    return raw


def _campaign_data(form: CampaignForm, slug: str) -> tuple[dict, list[Problem]]:
    """One campaign of the campaign file from the form, and what the file's shape cannot say (the
    same keyword typed twice: a TOML table cannot hold it twice, so the form reports it here)."""
    problems: list[Problem] = []
    keywords: dict[str, str] = {}
    for lang in LANGUAGES:
        for word in _WORDS.split(form[f"keywords_{lang}"].data or ""):
            if not word:
                continue
            if word in keywords:
                problems.append(Problem(f"campaign '{slug}': keyword {word} is listed twice", f"keywords.{lang}"))
            keywords[word] = lang
    data = {"slug": slug, "goal": _goal(form.goal.data), "active": bool(form.active.data),
            "broadcast_stop_notice": bool(form.broadcast_stop_notice.data), "keywords": keywords}
    for lang in LANGUAGES:
        data[lang] = {name: form[f"{name}_{lang}"].data or "" for name in ("title", "summary", "statement")}
    return data, problems


def _field_name(problem) -> str | None:
    """The form field a problem is about (Problem.field, like "en.summary" or "keywords.es")."""
    where = getattr(problem, "field", "")
    if where in ("slug", "goal", "active", "broadcast_stop_notice"):
        return where
    head, _, tail = where.partition(".")
    if head == "keywords":
        return f"keywords_{tail or LANGUAGES[0]}"
    if head in LANGUAGES:
        return f"{tail or 'title'}_{head}"
    return None


def _attach(form: CampaignForm, problems: list) -> None:
    for problem in problems:
        name = _field_name(problem)
        if name is not None:
            form[name].errors = [*form[name].errors, str(problem)]


def sms_count(text: str) -> dict:
    """What the counter under an SMS summary says (webhooks/static/campaign_form.js says the same as
    staff type): characters and segments of the text as sent, and whether it fits."""
    sent = gsm.to_gsm((text or "").strip())
    encoding, segments = gsm.segments(sent)
    fits = encoding == "GSM-7" and segments <= SMS_SUMMARY_MAX_SEGMENTS
    counted = f"{len(sent)} characters · {segments} segment{'' if segments == 1 else 's'}"
    if fits:
        says = f"{counted} (GSM-7): fits"
    elif encoding == "GSM-7":
        says = f"{counted} (GSM-7): too long, it must fit {SMS_SUMMARY_MAX_SEGMENTS} segments (306 characters)"
    else:
        says = (f"{counted} (UCS-2: a character is outside the GSM alphabet): it must fit "
                f"{SMS_SUMMARY_MAX_SEGMENTS} GSM-7 segments")
    return {"fits": fits, "says": says}


def _render(form: CampaignForm, *, slug: str | None, problems: list, status: int = 200, doc: dict | None = None):
    rt = runtime()
    catalog = rt.catalog
    default = catalog.organization.default_campaign
    gsm_tables = {"basic": "".join(sorted(gsm.GSM7_BASIC)), "extended": "".join(sorted(gsm.GSM7_EXTENDED)),
                  "replacements": gsm.REPLACEMENTS, "max_segments": SMS_SUMMARY_MAX_SEGMENTS}
    counts = {lang: sms_count(form[f"summary_{lang}"].data) for lang in LANGUAGES}
    return render_template("staff/campaign_form.html", page="dashboard", form=form, slug=slug, problems=problems,
                           languages=[(lang, LANGUAGE_NAMES.get(lang, lang)) for lang in LANGUAGES],
                           field_of=_field_name, counts=counts, gsm_tables=json.dumps(gsm_tables, ensure_ascii=False),
                           is_default=slug is not None and slug == default, default=default,
                           title=(doc or {}).get("en", {}).get("title") or slug), status


def _actor() -> svc.Actor:
    return svc.Actor(current_staff().email, client_ip())


# --- pages ------------------------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
def create():
    form = CampaignForm()
    if not form.is_submitted():
        form.process(data={"active": True, "broadcast_stop_notice": True, "goal": "0"})
        return _render(form, slug=None, problems=[])
    slug = (form.slug.data or "").strip()
    data, problems = _campaign_data(form, slug)
    change = svc.create_campaign(runtime(), data, _actor()) if not problems else svc.Change(problems=problems)
    if change.problems:
        _attach(form, change.problems)
        return _render(form, slug=None, problems=change.problems, status=422)
    flash(f"Campaign “{data['en']['title'].strip()}” is created: members can text "
          f"{', '.join(change.campaign['keywords'])} within a few seconds.")
    return redirect(url_for("staff.campaign", slug=slug), code=303)


@bp.route("/<slug>/edit", methods=["GET", "POST"])
def edit(slug: str):
    rt = runtime()
    doc = svc.get_campaign(rt, slug)
    if doc is None:
        abort(404, f"no campaign {slug!r}")
    form = CampaignForm()
    if not form.is_submitted():
        form.process(data=_form_data(doc))
        return _render(form, slug=slug, problems=[], doc=doc)
    form.slug.data = slug  # never changes: the field is read-only, and what a client sends is ignored
    data, problems = _campaign_data(form, slug)
    try:
        change = svc.replace_campaign(rt, slug, data, _actor()) if not problems else svc.Change(problems=problems)
    except svc.UnknownCampaign:
        abort(404, f"no campaign {slug!r}")
    if change.problems:
        _attach(form, change.problems)
        return _render(form, slug=slug, problems=change.problems, status=422, doc=doc)
    if change.changed:
        flash("Saved. Every server uses the new version within a few seconds.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("staff.campaign", slug=slug), code=303)


@bp.post("/<slug>/default")
def make_default(slug: str):
    """Make this campaign the default (the one a message without a keyword is about)."""
    try:
        change = svc.set_default_campaign(runtime(), slug, _actor())
    except svc.UnknownCampaign:
        abort(404, f"no campaign {slug!r}")
    if change.problems:
        for problem in change.problems:
            flash(str(problem))
        return redirect(url_for("staff_campaigns.edit", slug=slug), code=303)
    flash("This is now the default campaign: a message without a keyword is about it.")
    return redirect(url_for("staff_campaigns.edit", slug=slug), code=303)
