"""Unauthenticated read-only endpoints: health for load balancers, the live counter for web pages, the
public campaign page (/c/<slug>) and its counter for other sites' iframes (/c/<slug>/embed)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for

from bots import queries, signup
from config.campaigns import LANGUAGES
from webhooks import runtime

bp = Blueprint("public", __name__)
PUBLIC_CACHE = "public, max-age=5"  # public and read from other sites; a short cache absorbs spikes


@bp.get("/")
def home():
    """`firma serve`: the simulator; in production: the default campaign's public page."""
    if current_app.config.get("SIMULATOR_OPEN"):
        return redirect(url_for("simulator.page"))
    return redirect(url_for("public.campaign_page", slug=runtime().catalog.organization.default_campaign))


@bp.get("/healthz")
def healthz():
    if runtime().db.healthy():
        return jsonify(status="ok")
    return jsonify(status="database unavailable"), 503


@bp.get("/api/campaigns/<slug>")
def campaign(slug: str):
    info = queries.campaign_summary(runtime(), slug)
    if info is None:
        abort(404, f"no campaign {slug!r}")
    response = jsonify(info)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = PUBLIC_CACHE
    return response


def _language() -> str:
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default="en")


def _page(template: str, slug: str, with_ways: bool) -> Response:
    rt = runtime()
    language = _language()
    info = queries.campaign_summary(rt, slug)
    if info is None:
        body = render_template("public/not_found.html", page_lang=language, slug=slug,
                               t=lambda key, **v: rt.catalog.phrase(key, language, **v))
        return Response(body, 404, mimetype="text/html")
    campaign = rt.catalog.campaigns[slug]
    ways = []
    if with_ways and campaign.active:
        for way in signup.ways(rt.settings, rt.catalog, campaign, language):
            code = signup.qr(way.uri).svg_inline(scale=4, omitsize=True, title=way.label)
            ways.append((way, code))
    count, goal = info["signatures"], info["goal"]
    other = next(lang for lang in LANGUAGES if lang != language)
    body = render_template(
        template, page_lang=language, slug=slug, c=campaign.text(language), active=campaign.active,
        count=count, goal=goal, pct=min(100.0, 100.0 * count / goal) if goal else None, ways=ways,
        t=lambda key, **v: rt.catalog.phrase(key, language, **v), other=other,
        signatures=rt.catalog.phrase("signatures_one" if count == 1 else "signatures_other", language,
                                     count=f"{count:,}"),
        organization=rt.catalog.organization.name)
    response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = PUBLIC_CACHE
    response.vary.add("Accept-Language")
    return response


@bp.get("/c/<slug>")
def campaign_page(slug: str):
    return _page("public/campaign.html", slug, with_ways=True)


@bp.get("/c/<slug>/embed")
def campaign_embed(slug: str):
    """The counter alone, for an <iframe> on the organization's site: the one page others may frame
    (webhooks.security.FRAMEABLE)."""
    return _page("public/embed.html", slug, with_ways=False)
