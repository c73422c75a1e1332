"""A campaign file with a second campaign, dream-act (keywords DREAM and SUENO), after the shipped one."""

from __future__ import annotations

from pathlib import Path

from config.campaigns import Catalog, load_catalog
from config.settings import SHIPPED_CAMPAIGNS

SECOND_CAMPAIGN = '''

[[campaigns]]
slug = "dream-act"
goal = 5000
active = true

[campaigns.keywords]
DREAM = "en"
SUENO = "es"

[campaigns.en]
title = "Pass the Dream Act"
summary = "Pass the Dream Act: give young immigrants a path to stay."
statement = "We ask Congress to pass the Dream Act."

[campaigns.es]
title = "Aprueben el Dream Act"
summary = "Aprueben el Dream Act: un camino para que los jóvenes inmigrantes se queden."
statement = "Pedimos al Congreso que apruebe el Dream Act."
'''


def two_campaigns(directory: Path) -> Catalog:
    """The shipped campaign file plus dream-act, written in ``directory`` and loaded."""
    path = Path(directory) / "campaigns.toml"
    path.write_text(SHIPPED_CAMPAIGNS.read_text(encoding="utf-8") + SECOND_CAMPAIGN, encoding="utf-8")
    return load_catalog(path)
