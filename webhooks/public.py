"""Unauthenticated read-only endpoints: health for load balancers, the live counter for web pages."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify

from bots import queries
from webhooks import runtime

bp = Blueprint("public", __name__)


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
    # The counter is public and read from other sites' pages; a short cache absorbs traffic spikes.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=5"
    return response
