"""Security headers on every response (pages for staff and the simulator, APIs, webhooks).

The pages load their scripts and styles from /static only (no inline script), so a strict
Content-Security-Policy costs nothing and stops an injected <script> from running even if some
template forgot to escape. Pages are never framed (clickjacking) nor cached by shared caches, except
the public campaign counter made for other sites' iframes (FRAMEABLE), which any site may frame.
"""

from __future__ import annotations

from flask import Flask, Response, abort, request

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
FRAMEABLE = {"public.campaign_embed"}  # endpoints any site may show in an <iframe>
FRAMEABLE_CSP = CSP.replace("frame-ancestors 'none'", "frame-ancestors *")


def install(app: Flask) -> None:
    @app.before_request
    def limit_streamed_bodies():
        # With a Content-Length, Werkzeug refuses a body over MAX_CONTENT_LENGTH with 413 before
        # reading it. A chunked body has none, and Werkzeug then silently cuts it at the limit; read
        # it here (at most the limit, cached for the form parser) and refuse it the same way.
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is None and request.headers.get("Transfer-Encoding"):
            if len(request.get_data(cache=True, parse_form_data=False)) >= limit:
                abort(413)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # "same-origin", not "no-referrer": Flask-WTF checks the Referer of staff form posts over https.
        headers.setdefault("Referrer-Policy", "same-origin")
        frameable = request.endpoint in FRAMEABLE
        if not frameable:
            headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html" or request.path.startswith("/staff"):
            headers.setdefault("Content-Security-Policy", FRAMEABLE_CSP if frameable else CSP)
            headers.setdefault("Cache-Control", "no-store")
        if app.config.get("PREFERRED_URL_SCHEME") == "https" or app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
