"""The simulator's JSON posts carry the CSRF token of the page, as its JavaScript does."""

from __future__ import annotations

import re


def csrf_token(client) -> str:
    page = client.get("/simulator/").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def headers(client) -> dict[str, str]:
    return {"X-CSRFToken": csrf_token(client)}
