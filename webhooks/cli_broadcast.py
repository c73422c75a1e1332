"""`firma broadcast`, `firma broadcast status [ID]`, `firma broadcast cancel ID` and `firma worker`:
parse, call the broadcast service functions (bots/broadcasts.py, bots/worker/), print."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import click

from bots import audit


class _Channels(click.Choice):
    """The broadcast's channel filter: all, or a channel's name (the registry's, read when used)."""

    def __init__(self):
        super().__init__([], case_sensitive=False)

    @property
    def choices(self):
        from bots import channels
        from bots.broadcasts import ALL

        return (ALL, *channels.names())

    @choices.setter
    def choices(self, value):
        pass


def _runtime(ctx: click.Context):
    return ctx.find_root().obj.ready_runtime()


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use a date like 2026-11-01 or 2026-11-01T18:00+00:00", param_hint="--signed-since")
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 signer``, ``2 signers``, ``1,000 SMS``: the noun agrees with the number."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def _took(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "under a second"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@click.group("broadcast", invoke_without_command=True)
@click.option("--campaign", "slug", help="Campaign slug, like end-scomm.")
@click.option("--message", help="The text in English (also sent to members of other languages). {name} and "
                                "{first_name} are filled in.")
@click.option("--message-es", help="The text in Spanish.")
@click.option("--channel", type=_Channels(), default="all", show_default=True, help="Which signers to reach.")
@click.option("--state", help="Only signers whose ZIP is in this state (two letters, like CA).")
@click.option("--zip-prefix", help="Only signers whose ZIP starts with these digits.")
@click.option("--signed-since", help="Only signers who signed on or after this date (UTC).")
@click.option("--whatsapp-template", "window_template", metavar="CONTENT_SID",
              help="An approved WhatsApp template (Twilio Content SID, HX...) for members who have not written "
                   "in 24 hours; its variable 1 is their first name. Without it they are not sent to.")
@click.option("--dry-run", is_flag=True, help="Show recipients, SMS segments and encoding; send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--enqueue", is_flag=True, help="Only queue it; `firma worker` sends it.")
@click.option("--at", "at", help="Send at this time (2026-12-05T10:00, in FIRMA_TIMEZONE unless it has an offset): "
                                 "only writes the broadcast; `firma worker` sends it then.")
@click.pass_context
def broadcast(ctx: click.Context, slug, message, message_es, channel, state, zip_prefix, signed_since,
              window_template, dry_run, yes, enqueue, at):
    """Send a message to a campaign's signers (or, with `status`, list broadcasts).

    Without --enqueue it sends now, with a progress bar; SMS held by quiet hours stay queued for
    `firma worker`, and the command says how many and until when."""
    if ctx.invoked_subcommand:
        return
    if not slug or not message:
        raise click.UsageError("--campaign and --message are required (or use `firma broadcast status`)")
    from rich.console import Console

    from bots import broadcasts as svc
    from bots.worker import make_senders

    console = Console()
    rt = _runtime(ctx)
    send_at = None
    if at:
        try:
            send_at = svc.parse_send_at(at, rt.settings.timezone)
        except svc.BroadcastError as exc:
            raise click.BadParameter(str(exc).removeprefix("--at "), param_hint="--at") from None
        enqueue = True  # it only writes the broadcast; a worker sends it at the time
    req = svc.BroadcastRequest(slug, message, message_es, channel.lower(), state, zip_prefix, _since(signed_since),
                               created_by=audit.cli_user(), window_template=window_template, send_at=send_at)
    try:
        pv = svc.preview(rt, req)
    except svc.BroadcastError as exc:
        raise click.ClickException(str(exc)) from None
    _print_preview(console, pv)
    if dry_run:
        console.print("[bold]dry run:[/bold] nothing was sent and nothing was queued")
        return
    if pv.total == 0:
        console.print("nobody to send to: no broadcast was made")
        return
    senders = {}
    if not enqueue:
        try:
            senders = make_senders(rt, tuple(ch for ch, n in pv.recipients.items() if n), required=True)
        except svc.BroadcastError as exc:
            raise click.ClickException(f"{exc} (or queue it with --enqueue for a worker that has them)") from None
    if not yes:
        from bots import channels

        parts = [f"{n:,} by {channels.label(ch)}" for ch, n in sorted(pv.recipients.items())]
        cost = f", about {_count(pv.segments, 'SMS segment')}" if pv.segments else ""
        when = f" at {svc.local_time(send_at, rt.settings.timezone)}" if send_at else ""
        click.confirm(f"Send to {_count(pv.total, 'signer')} ({', '.join(parts)}{cost}){when}?", abort=True)
    try:
        created = svc.create_broadcast(rt, req)
    except svc.BroadcastError as exc:
        raise click.ClickException(str(exc)) from None
    audit.record(rt.db, req.created_by, audit.BROADCAST, str(created.id),
                 audit.broadcast_detail(req.campaign, created.recipients, pv.recipients, created.held), None, rt.now())
    if created.send_at is not None:
        console.print(f"broadcast #{created.id} is scheduled for {svc.local_time(created.send_at, rt.settings.timezone)}"
                      f" ({created.send_at:%Y-%m-%d %H:%M} UTC): `firma worker` sends it then to the signers of "
                      f"that moment ({pv.total:,} now). `firma broadcast cancel {created.id}` stops it before.")
        return
    console.print(f"broadcast #{created.id}: {_count(created.recipients, 'recipient')}")
    if enqueue:
        console.print("queued: `firma worker` sends it")
        _print_held(console, svc.progress(rt, created.id))
        return
    _send_foreground(console, rt, created, senders)


def _print_preview(console, pv) -> None:
    from rich.table import Table

    t = Table(title=f"Broadcast to signers of {pv.request.campaign}")
    for col in ("channel", "language", "recipients"):
        t.add_column(col, justify="right" if col == "recipients" else "left")
    for (ch, lang), n in sorted(pv.by_language.items()):
        t.add_row(ch, lang, f"{n:,}")
    t.add_row("[bold]all[/bold]", "", f"[bold]{pv.total:,}[/bold]")
    console.print(t)
    texts = Table(title="What they read (for a sample name)")
    for col in ("channel", "lang", "encoding", "segments", "chars"):  # short: the text gets the width
        texts.add_column(col, no_wrap=True)
    texts.add_column("text", overflow="fold", ratio=1)
    for c in pv.texts:
        texts.add_row(c.channel, c.language, c.encoding, str(c.segments) if c.encoding != "text" else "-",
                      str(c.characters), c.sample)
    console.print(texts)
    if pv.segments:
        console.print(f"SMS cost: about {pv.segments:,} segments")
    for w in pv.warnings:
        console.print(f"[yellow]note:[/yellow] {w}")


def _print_held(console, p) -> None:
    held = p.n("held") if p else 0
    if held == 1:
        console.print(f"1 SMS is held for quiet hours; it goes out at {_when(p.next_release)} "
                      "(`firma worker` sends it)")
    elif held:
        console.print(f"{held:,} SMS are held for quiet hours; the first go out at {_when(p.next_release)} "
                      "(`firma worker` sends them)")


def _send_foreground(console, rt, created, senders) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bots import broadcasts as svc
    from bots.worker import Options, run_worker

    columns = (TextColumn("[bold]#{task.fields[bid]}"), BarColumn(),
               TextColumn("sent {task.fields[sent]:,}  failed {task.fields[failed]:,}  held {task.fields[held]:,}  "
                          "{task.fields[rate]}"), TimeElapsedColumn())
    start = time.monotonic()
    state = {"t": start, "sent": 0}
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("send", total=created.recipients, bid=created.id, sent=0, failed=0, held=0, rate="")

        async def tick(_stats):
            p = await asyncio.to_thread(svc.progress, rt, created.id)
            now = time.monotonic()
            sent = p.n("sent", "delivered")
            fields = {}
            if now - state["t"] >= 0.5:  # the current rate, over the last half second or more
                fields["rate"] = f"{(sent - state['sent']) / (now - state['t']):,.1f} msg/s"
                state["t"], state["sent"] = now, sent
            bar.update(task, completed=p.done + p.n("held"), sent=sent, failed=p.n("failed", "unknown"),
                       held=p.n("held"), **fields)

        stats = None
        try:
            stats = run_worker(rt, Options(drain=True, broadcast_id=created.id), senders, on_progress=tick)
        except KeyboardInterrupt:
            console.print("stopped: what is left stays queued for `firma worker`")
        elapsed = time.monotonic() - start
        p = svc.progress(rt, created.id)
        handed = p.n("sent", "delivered", "failed", "unknown")
        bar.update(task, completed=p.done + p.n("held"), sent=p.n("sent", "delivered"),
                   failed=p.n("failed", "unknown"), held=p.n("held"),
                   rate=f"{handed / elapsed:,.1f} msg/s on average" if handed else "")
    console.print(_summary(p) + (f" in {elapsed:.1f} s ({handed / elapsed:,.1f} msg/s)" if handed else ""))
    _print_held(console, p)
    if stats is not None and stats.unavailable:
        from bots import channels

        for ch, why in sorted(stats.unavailable.items()):
            console.print(f"[red]{channels.label(ch)} did not send:[/red] {why}; its messages stay queued for "
                          "`firma worker`", markup=True, highlight=False)


def _summary(p) -> str:
    from bots.broadcasts import OUTSIDE_WINDOW

    parts = [f"{s.replace('_', ' ')} {p.counts[s]:,}"
             for s in ("sent", "delivered", "failed", "skipped", OUTSIDE_WINDOW, "unknown", "held", "pending")
             if p.counts.get(s)]
    return f"broadcast #{p.broadcast.id}: " + (", ".join(parts) or "nothing to send")


@broadcast.command("status")
@click.argument("broadcast_id", required=False, type=int)
@click.option("--limit", default=20, show_default=True, help="How many recent broadcasts to list.")
@click.pass_context
def status(ctx: click.Context, broadcast_id: int | None, limit: int):
    """List recent broadcasts with their counts, or show one: its texts, who it went to, every count
    and its timing."""
    from rich.console import Console

    from bots import broadcasts as svc

    rt = _runtime(ctx)
    console = Console()
    if broadcast_id is None:
        _print_list(console, svc.list_broadcasts(rt, limit))
        return
    p = svc.progress(rt, broadcast_id)
    if p is None:
        raise click.ClickException(f"no broadcast #{broadcast_id}")
    _print_detail(console, p, rt.settings.timezone)


def _audience(b, short: bool = False) -> str:
    """Whom a broadcast went to: its channel and filters in words."""
    from bots import channels

    parts = [] if short and b.channel == "all" else [
        "all channels" if b.channel == "all" else channels.label(b.channel)]
    if b.state:
        parts.append(b.state if short else f"state {b.state}")
    if b.zip_prefix:
        parts.append(f"ZIP {b.zip_prefix}*")
    if b.signed_since:
        parts.append(f"since {b.signed_since:%Y-%m-%d}" if short else f"signed since {b.signed_since:%Y-%m-%d}")
    return ", ".join(parts)


# What each delivery status means, in the order a message moves through them.
STATUS_WORDS = (
    ("pending", "waiting for a worker"),
    ("held", "held for quiet hours"),
    ("sending", "with a worker now"),
    ("sent", "accepted by the provider"),
    ("delivered", "delivered to the phone"),
    ("failed", "failed"),
    ("unknown", "may or may not have arrived (a worker stopped mid-call)"),
    ("skipped", "not sent (cancelled, or the member opted out meanwhile)"),
    ("outside_window", "not sent: outside WhatsApp's 24-hour window, and no approved template"),
)


def _print_list(console, rows) -> None:
    """One line a broadcast; 80 columns hold it (the campaign column wraps, figures never do)."""
    from rich import box
    from rich.table import Table

    if not rows:
        console.print("no broadcasts yet")
        return
    t = Table(title="Broadcasts", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
              caption="`firma broadcast status ID` shows one: its texts, every count, its timing")
    t.add_column("id", justify="right", no_wrap=True)
    t.add_column("created (UTC)", no_wrap=True)
    t.add_column("campaign, to", overflow="fold", min_width=10)
    for col in ("recipients", "sent", "failed", "left"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("state", no_wrap=True)
    for p in rows:
        b = p.broadcast
        to = _audience(b, short=True)
        t.add_row(str(b.id), f"{b.created_at:%Y-%m-%d %H:%M}", b.campaign + (f"\n{to}" if to else ""),
                  f"{b.recipients:,}", f"{p.n('sent', 'delivered'):,}", f"{p.n('failed', 'unknown'):,}",
                  f"{p.open:,}", p.state)
    console.print(t)


def _print_detail(console, p, zone: str) -> None:
    """One broadcast; a time to come is in the organization's time zone (FIRMA_TIMEZONE) as well."""
    from rich.table import Table

    from bots.broadcasts import local_time

    b = p.broadcast
    waiting = b.send_at is not None and b.queued_at is None and b.cancelled_at is None
    console.print(f"[bold]Broadcast #{b.id}[/bold] to signers of {b.campaign}: {p.state}")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("to", _audience(b))
    facts.add_row("created", f"{_when(b.created_at)} by {b.created_by}")
    if b.send_at is not None:
        facts.add_row("scheduled for", f"{local_time(b.send_at, zone)} ({_when(b.send_at)})"
                      + ("" if b.queued_at is None else ", started"))
    if b.started_at:
        facts.add_row("started", _when(b.started_at))
    if b.finished_at:
        took = f" (took {_took((b.finished_at - b.started_at).total_seconds())})" if b.started_at else ""
        facts.add_row("finished", _when(b.finished_at) + took)
    if b.cancelled_at:
        facts.add_row("cancelled", f"by {b.cancelled_by} at {_when(b.cancelled_at)}")
    facts.add_row("English", b.message_en)
    facts.add_row("Spanish", b.message_es or "(none: Spanish speakers get the English text)")
    if b.window_template:
        facts.add_row("WhatsApp", f"members outside the 24-hour window get the approved template {b.window_template}")
    console.print(facts)
    if waiting:  # its recipients are written when its time comes: no counts yet
        console.print(f"nothing is sent before then; it goes to the signers the filters match at that time "
                      f"(`firma broadcast cancel {b.id}` cancels it)")
        return
    counts = Table.grid(padding=(0, 2))
    counts.add_column(no_wrap=True)
    counts.add_column(justify="right", no_wrap=True)
    counts.add_column(overflow="fold")
    counts.add_row("recipients", f"{b.recipients:,}", "")
    for status_, words in STATUS_WORDS:
        n = p.counts.get(status_, 0)
        if n or status_ == "sent":
            counts.add_row(status_, f"{n:,}", words)
    console.print(counts)
    if b.cancelled_at:
        console.print(f"cancelled by {b.cancelled_by} at {_when(b.cancelled_at)}: "
                      f"{_count(p.counts.get('skipped', 0), 'message')} skipped")
    _print_held(console, p)


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def cancel(ctx: click.Context, broadcast_id: int, yes: bool):
    """Stop a broadcast: messages not yet handed to the provider are not sent (those in flight finish)."""
    from bots import broadcasts as svc

    rt = _runtime(ctx)
    p = svc.progress(rt, broadcast_id)
    if p is None:
        raise click.ClickException(f"no broadcast #{broadcast_id}")
    scheduled = p.broadcast.queued_at is None and p.broadcast.cancelled_at is None
    if not yes:
        if scheduled:
            click.confirm(f"Cancel broadcast #{broadcast_id}, scheduled for "
                          f"{svc.local_time(p.broadcast.send_at, rt.settings.timezone)}? Nothing will be sent",
                          abort=True)
        else:
            click.confirm(f"Stop broadcast #{broadcast_id}? {p.not_sent:,} of its "
                          f"{p.broadcast.recipients:,} messages have not gone out yet and will not be sent", abort=True)
    who = audit.cli_user()
    result = svc.cancel_broadcast(rt, broadcast_id, by=who)
    if not result.already and not result.finished:
        audit.record(rt.db, who, audit.BROADCAST_CANCEL, str(broadcast_id),
                     f"{result.cancelled} messages not sent; {result.in_flight} already with the provider", None,
                     rt.now())
    if scheduled and not result.already:
        click.echo(f"broadcast #{broadcast_id} cancelled before its time: nothing will be sent")
    elif result.finished:
        click.echo(f"broadcast #{broadcast_id} had finished: nothing to cancel")
    elif result.already:
        click.echo(f"broadcast #{broadcast_id} was cancelled already" +
                   (f"; {result.cancelled:,} more skipped now" if result.cancelled else ""))
    else:
        click.echo(f"broadcast #{broadcast_id} cancelled: {result.cancelled:,} messages will not be sent"
                   + (f"; {result.in_flight:,} already with the provider finish" if result.in_flight else ""))


@click.command("worker")
@click.option("--drain", is_flag=True, help="Exit when nothing is left to send now (held SMS stay queued).")
@click.option("--concurrency", default=500, show_default=True, type=click.IntRange(1, 5000),
              help="Most provider calls in flight per channel.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000),
              help="Most deliveries claimed per transaction.")
@click.option("--lease", default=120.0, show_default=True, type=click.FloatRange(1, 86400),
              help="Seconds a claimed delivery may stay `sending` before it is reported unknown.")
@click.pass_context
def worker(ctx: click.Context, drain: bool, concurrency: int, batch: int, lease: float):
    """Send queued broadcast deliveries, and make the delivery PDFs the console asked for (any number of
    workers, on any number of hosts, with PostgreSQL)."""
    from bots import broadcast_plan
    from bots.worker import Options, run_worker

    from bots.catalog import CatalogWatcher

    rt = _runtime(ctx)
    options = Options(drain=drain, concurrency=concurrency, batch=batch, lease=lease)
    try:
        with CatalogWatcher(rt):  # stop notices follow campaign edits made while it runs
            stats = run_worker(rt, options)
    except broadcast_plan.BroadcastError as exc:
        raise click.ClickException(str(exc)) from None
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.counts.items()) if v)
    click.echo(f"worker done: {counts or 'nothing was due'}")
    if stats.unavailable:
        from bots import channels

        raise click.ClickException("; ".join(f"{channels.label(ch)} did not send: {why}"
                                             for ch, why in sorted(stats.unavailable.items())))

