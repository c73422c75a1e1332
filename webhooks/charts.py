"""Chart geometry for the staff dashboard, drawn server-side (SVG attributes, no inline styles, no JS).

Pure functions of numbers the server already has; they read well with 0, 1 and 1,000,000 signatures:
the scale is a "nice" round maximum, tiny non-zero bars stay visible, and numbers are grouped (1,000,000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

MIN_VISIBLE_PCT = 0.75  # a bar for 1 among 1,000,000 still shows as a sliver


def nice_max(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k that is >= value (and 1 for 0)."""
    if value <= 1:
        return 1
    exp = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * exp >= value:
            return step * exp
    return 10 * exp  # pragma: no cover - the loop always returns


def number(n: int) -> str:
    return f"{n:,}"


def percent(part: int, whole: int) -> str:
    """'0%', '<0.1%', '12.3%', '100%' (and more than 100% past the goal)."""
    if whole <= 0 or part <= 0:
        return "0%"
    value = 100.0 * part / whole
    if value < 0.1:
        return "<0.1%"
    return f"{value:,.0f}%" if value >= 100 else f"{value:.1f}%"


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    pct: float  # of the largest value, 0..100

    @property
    def text(self) -> str:
        return number(self.value)


def ranked_bars(pairs: list[tuple[str, int]]) -> list[Bar]:
    """Horizontal bars, widths relative to the largest value (which fills the row)."""
    top = max((n for _, n in pairs), default=0)
    out = []
    for label, n in pairs:
        pct = 0.0 if n <= 0 or top <= 0 else max(MIN_VISIBLE_PCT, 100.0 * n / top)
        out.append(Bar(str(label), n, round(pct, 2)))
    return out


@dataclass(frozen=True)
class DayBar:
    day: date
    value: int
    x: float
    y: float
    height: float

    @property
    def title(self) -> str:
        return f"{self.day.isoformat()}: {number(self.value)}"


@dataclass(frozen=True)
class DayChart:
    bars: list[DayBar]
    width: int  # viewBox units; the SVG stretches to the page width
    height: int
    scale_max: int
    total: int
    peak: DayBar | None

    @property
    def ticks(self) -> list[str]:
        """Y-axis labels, top to bottom."""
        return [number(self.scale_max), number(self.scale_max // 2) if self.scale_max > 1 else "", "0"]

    @property
    def summary(self) -> str:
        if not self.bars:
            return "No days to show."
        first, last = self.bars[0].day, self.bars[-1].day
        if not self.total:
            return f"No signatures from {first:%b %-d} to {last:%b %-d}."
        peak = self.peak
        noun = "signature" if self.total == 1 else "signatures"
        return (f"{number(self.total)} {noun} from {first:%b %-d} to {last:%b %-d}; "
                f"the busiest day was {peak.day:%b %-d} with {number(peak.value)}.")


SLOT = 10  # viewBox units per day
BAR = 8
HEIGHT = 100


def day_chart(days: list[tuple[date, int]]) -> DayChart:
    top = max((n for _, n in days), default=0)
    scale = nice_max(top)
    bars = []
    for i, (d, n) in enumerate(days):
        h = 0.0 if n <= 0 else max(HEIGHT * MIN_VISIBLE_PCT / 100, HEIGHT * n / scale)
        bars.append(DayBar(d, n, i * SLOT + (SLOT - BAR) / 2, round(HEIGHT - h, 3), round(h, 3)))
    peak = max(bars, key=lambda b: (b.value, b.day), default=None)
    return DayChart(bars, max(1, len(days)) * SLOT, HEIGHT, scale, sum(n for _, n in days),
                    peak if peak and peak.value else None)
