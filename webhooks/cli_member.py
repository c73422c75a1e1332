"""`firma member ...`: one member's data, on request (the CLI entry point; the work is in bots.privacy)."""

from __future__ import annotations

import click



@click.group("member")
def member_group():
    """One member's personal data (erasure requests)."""


@member_group.command("forget")
@click.argument("contact")
@click.option("--channel", help="The contact's channel, when the contact could be read as more than one "
                               "(a number of digits may be a phone number or a Telegram user id).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def forget(obj, contact: str, channel: str | None, yes: bool):
    """Erase CONTACT's personal data (an E.164 phone number or a Telegram user id).

    A phone number is one person on SMS and on WhatsApp: both are forgotten, and so is a Telegram
    chat that shared that number. Their conversations in the inbox are deleted.
    Names, ZIP codes, cities and the contact itself are erased for good; the signatures still count,
    anonymously, and the contact stays opted out: firma never writes to it again unless the person
    texts a keyword anew. A consent event of kind "forget" records the erasure.
    """
    from bots import audit, channels, privacy

    settings = obj.settings
    if settings.secret_key_generated:
        raise click.ClickException("FIRMA_SECRET_KEY is not set: forgetting needs the key the web app uses, "
                                   "so that the number stays opted out if it writes again")
    if channel is not None and channel not in channels.names():
        raise click.BadParameter(f"one of {', '.join(channels.names())}", param_hint="--channel")
    candidates = [(c, a) for c, a in channels.contact_candidates(contact) if channel in (None, c)]
    if not candidates:
        raise click.ClickException(f"{contact!r} is not a contact firma can read (a phone number like "
                                   "+13125550101 or (312) 555-0101, or a Telegram user id)")
    rt = obj.runtime
    found = privacy.locate(rt.db.uow(), candidates)
    if found is None:
        raise click.ClickException(f"no member with the contact {contact}"
                                   + (f" on {channels.label(channel)}" if channel else ""))
    channel, address = found
    if not yes:
        click.confirm(f"Erase the personal data of {channels.label(channel)} member {address}? This cannot be undone",
                      abort=True)
    result = privacy.forget(rt.db.uow(), settings.secret_key, channel, address, rt.now())
    if result is None:
        raise click.ClickException(f"no {channels.label(channel)} member {address}")
    # the member's row id, never the contact: the entry outlives the erasure it records
    audit.record(rt.db, audit.cli_user(), audit.MEMBER_FORGET, str(result.member_id),
                 f"{channels.label(channel)} member; {result.signatures} signature(s) kept anonymously", None, rt.now())
    linked = f" (with {result.contacts - 1} contact(s) linked to the same person)" if result.contacts > 1 else ""
    files = f"; {result.delivery_files} delivery PDF(s) kept for the console deleted" if result.delivery_files else ""
    click.echo(f"forgotten: personal data erased{linked}; {result.signatures} signature(s) kept anonymously; "
               f"the contact stays opted out{files}")


@click.command("purge")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650),
              help="Keep provider message ids and the replies given for this many days.")
@click.option("--inbox-days", default=180, show_default=True, type=click.IntRange(1, 36500),
              help="Keep inbox conversations marked done for this many days after they were closed.")
@click.pass_obj
def purge(obj, days: int, inbox_days: int):
    """Delete short-lived data: handled message ids with their replies (older than --days),
    per-sender inbound counters (older than an hour), status callbacks for messages no delivery
    claimed (older than --days), inbox conversations done more than --inbox-days ago, with their
    messages, and delivery PDFs made for the console more than a week ago. Run it daily (cron)."""
    from bots import privacy

    rt = obj.runtime
    result = privacy.purge(rt.db.uow(), rt.now(), days, inbox_days)
    click.echo(f"purged {result.processed} handled message(s) older than {days} days and "
               f"{result.counters} inbound counter(s)"
               + (f"; {result.early_statuses} unclaimed status callback(s)" if result.early_statuses else "")
               + f"; {result.conversations} inbox conversation(s) done more than {inbox_days} days ago"
               + (f"; {result.ids} provider message id(s) older than {privacy.PROVIDER_IDS_KEPT_DAYS} days" if result.ids
                  else "")
               + (f"; {result.delivery_files} delivery PDF(s) older than {privacy.DELIVERY_FILES_KEPT_DAYS} days"
                  if result.delivery_files else ""))
