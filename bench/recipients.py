"""Broadcast recipients, person-aware, on PostgreSQL.

    python3 bench/recipients.py            # 200,000 signers
    python3 bench/recipients.py --smoke    # 10,000 signers, seconds

A broadcast reaches each person once, on the chat they last wrote from, now that one phone number
can be a person on SMS and on WhatsApp (storage/broadcasts.py recipients_query). This counts the
recipients of a broadcast to every signer with that query, and, as the baseline in the same run,
with the signer-only join the query replaced (one chat per signer); 1% of the signers also have a
WhatsApp chat linked to them. Prints the best of five of each and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="10,000 signers")
    args = parser.parse_args()
    n = 10_000 if args.smoke else 200_000

    from sqlalchemy import func, insert, select, text

    from bots.runtime import Runtime
    from config.settings import Settings
    from storage import broadcasts as sql
    from storage.models import Member, Signature
    from tests.support import broadcasts as h

    print(common.machine())
    with tempfile.TemporaryDirectory() as tmp, common.fresh_database("postgresql", Path(tmp)) as url:
        rt = Runtime.build(Settings(database_url=url, secret_key="bench", secret_key_generated=False))
        h.add_signers_bulk(rt, n)
        seen = datetime.now(timezone.utc) - timedelta(hours=1)
        with rt.db.uow() as uow:  # 1% of them wrote on WhatsApp too: one person, two chats
            s = uow.session
            roots = list(s.execute(select(Member.id, Member.address).where(Member.channel == "sms")
                                   .order_by(Member.id).limit(n // 100)))
            s.execute(insert(Member), [dict(channel="whatsapp", address=a, language="en", simulated=False,
                                            created_at=seen, last_seen_at=seen, person_id=i) for i, a in roots])
            uow.commit()
        with rt.db.uow() as uow:
            uow.session.execute(text("ANALYZE"))
            uow.commit()
        f = sql.Filters("end-scomm")
        before = (select(func.count()).select_from(Signature).join(Member, Member.id == Signature.member_id)
                  .where(Signature.campaign == f.campaign, Signature.simulated.is_(False),
                         Member.simulated.is_(False), Member.opted_out_at.is_(None), Member.unreachable_at.is_(None)))
        after = select(func.count()).select_from(sql.recipients_query(f, Member.id).subquery())
        times = {}
        for name, q in (("signer-only (baseline)", before), ("person-aware", after)):
            best, count = 1e9, 0
            for _ in range(5):
                with rt.db.reader() as uow:
                    t = time.perf_counter()
                    count = uow.session.scalar(q)
                    best = min(best, time.perf_counter() - t)
            times[name] = best
            print(f"{name:24s} {count:,} recipients, best of 5: {best * 1000:.0f} ms")
        print(f"ratio person-aware / baseline: {times['person-aware'] / times['signer-only (baseline)']:.2f}x")
        rt.db.dispose()


if __name__ == "__main__":
    main()
