"""Security headers on every response (pages for staff and the simulator, APIs, webhooks).

The pages load their scripts and styles from /static only (no inline script), so a strict
Content-Security-Policy costs nothing and stops an injected <script> from running even if some
template forgot to escape. Pages are never framed (clickjacking) nor cached by shared caches.
"""

from __future__ import annotations

from flask import Flask, Response

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def install(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", CSP)
            headers.setdefault("Cache-Control", "no-store")
        if app.config.get("PREFERRED_URL_SCHEME") == "https" or app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
