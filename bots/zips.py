"""Offline US ZIP code directory (the `zipcodes` package's data), loaded once per process.

Loading takes seconds and well over 100 MB at its peak, so it happens on first use, or at start-up
when a process calls ``load()`` (the web app does, so no request pays for it); commands that never
look up a ZIP (``firma export``) never load it.
"""

from __future__ import annotations

import threading

from bots.engine import ZipInfo


class ZipDirectory:
    """ZIP -> city, state, time zone; area code -> time zone (for numbers whose ZIP gives none)."""

    def __init__(self, rows: list[dict] | None = None):
        self._rows = rows
        self._by_zip: dict[str, ZipInfo] | None = None
        self._area_tz: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self) -> "ZipDirectory":
        if self._by_zip is None:
            with self._lock:
                if self._by_zip is None:
                    self._build()
        return self

    def _build(self) -> None:
        import zipcodes

        rows = zipcodes.list_all() if self._rows is None else self._rows
        self._rows = None
        by_zip: dict[str, ZipInfo] = {}
        area: dict[str, dict[str, int]] = {}
        for row in rows:
            tz = row.get("timezone") or None
            code = row["zip_code"]
            if code not in by_zip:
                by_zip[code] = ZipInfo(code, row.get("city", ""), row.get("state", ""), tz)
            for ac in row.get("area_codes") or ():
                if tz:
                    area.setdefault(ac, {}).setdefault(tz, 0)
                    area[ac][tz] += 1
        # An area code can span zones; take the zone most of its ZIPs are in.
        self._area_tz = {ac: max(zones, key=zones.get) for ac, zones in area.items()}
        self._by_zip = by_zip  # last: other threads check it without the lock

    def __call__(self, zip5: str) -> ZipInfo | None:
        return (self._by_zip if self._by_zip is not None else self.load()._by_zip).get(zip5)

    def __len__(self) -> int:
        return len(self.load()._by_zip)

    def timezone_for_area_code(self, area_code: str) -> str | None:
        return self.load()._area_tz.get(area_code)
