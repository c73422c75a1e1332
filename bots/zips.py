"""Offline US ZIP code directory (the `zipcodes` package's data), loaded once per process."""

from __future__ import annotations

import zipcodes

from bots.engine import ZipInfo


class ZipDirectory:
    """ZIP -> city, state, time zone; area code -> time zone (for numbers whose ZIP gives none)."""

    def __init__(self, rows: list[dict] | None = None):
        rows = zipcodes.list_all() if rows is None else rows
        self._by_zip: dict[str, ZipInfo] = {}
        area: dict[str, dict[str, int]] = {}
        for row in rows:
            tz = row.get("timezone") or None
            code = row["zip_code"]
            if code not in self._by_zip:
                self._by_zip[code] = ZipInfo(code, row.get("city", ""), row.get("state", ""), tz)
            for ac in row.get("area_codes") or ():
                if tz:
                    area.setdefault(ac, {}).setdefault(tz, 0)
                    area[ac][tz] += 1
        # An area code can span zones; take the zone most of its ZIPs are in.
        self._area_tz = {ac: max(zones, key=zones.get) for ac, zones in area.items()}

    def __call__(self, zip5: str) -> ZipInfo | None:
        return self._by_zip.get(zip5)

    def __len__(self) -> int:
        return len(self._by_zip)

    def timezone_for_area_code(self, area_code: str) -> str | None:
        return self._area_tz.get(area_code)
