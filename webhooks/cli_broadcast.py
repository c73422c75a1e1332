"""`firma broadcast`, `firma broadcast status [ID]`, `firma broadcast cancel ID` and `firma worker`:
parse, call the broadcast service functions (bots/broadcasts.py, bots/broadcast_worker.py), print."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timezone

import click



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
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per Telegram call otherwise
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


@click.group("broadcast", invoke_without_command=True)
@click.option("--campaign", "slug", help="Campaign slug, like end-scomm.")
@click.option("--message", help="The text in English (also sent to members of other languages). {name} and "
                                "{first_name} are filled in.")
@click.option("--message-es", help="The text in Spanish.")
@click.option("--channel", type=_Channels(), default="all", show_default=True, help="Which signers to reach.")
@click.option("--state", help="Only signers whose ZIP is in this state (two letters, like CA).")
@click.option("--zip-prefix", help="Only signers whose ZIP starts with these digits.")
@click.option("--signed-since", help="Only signers who signed on or after this date (UTC).")
@click.option("--dry-run", is_flag=True, help="Show recipients, SMS segments and encoding; send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--enqueue", is_flag=True, help="Only queue it; `firma worker` sends it.")
@click.option("--at", "at", help="Send at this time (2026-12-05T10:00, in FIRMA_TIMEZONE unless it has an offset): "
                                 "only writes the broadcast; `firma worker` sends it then.")
@click.pass_context
def broadcast(ctx: click.Context, slug, message, message_es, channel, state, zip_prefix, signed_since, dry_run,
              yes, enqueue, at):
    """Send a message to a campaign's signers (or, with `status`, list broadcasts).

    Without --enqueue it sends now, with a progress bar; SMS held by quiet hours stay queued for
    `firma worker`, and the command says how many and until when."""
    if ctx.invoked_subcommand:
        return
    if not slug or not message:
        raise click.UsageError("--campaign and --message are required (or use `firma broadcast status`)")
    from rich.console import Console

    from bots import broadcasts as svc
    from bots.broadcast_worker import make_senders

    console = Console()
    rt = _runtime(ctx)
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "cli"
    send_at = None
    if at:
        try:
            send_at = svc.parse_send_at(at, rt.settings.timezone)
        except svc.BroadcastError as exc:
            raise click.BadParameter(str(exc).removeprefix("--at "), param_hint="--at") from None
        enqueue = True  # it only writes the broadcast; a worker sends it at the time
    req = svc.BroadcastRequest(slug, message, message_es, channel.lower(), state, zip_prefix, _since(signed_since),
                               created_by=f"cli:{user}", send_at=send_at)
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
        cost = f", about {pv.segments:,} SMS segments" if pv.segments else ""
        when = f" at {svc.local_time(send_at, rt.settings.timezone)}" if send_at else ""
        click.confirm(f"Send to {pv.total:,} signers ({', '.join(parts)}{cost}){when}?", abort=True)
    try:
        created = svc.create_broadcast(rt, req)
    except svc.BroadcastError as exc:
        raise click.ClickException(str(exc)) from None
    if created.send_at is not None:
        console.print(f"broadcast #{created.id} is scheduled for {svc.local_time(created.send_at, rt.settings.timezone)}"
                      f" ({created.send_at:%Y-%m-%d %H:%M} UTC): `firma worker` sends it then to the signers of "
                      f"that moment ({pv.total:,} now). `firma broadcast cancel {created.id}` stops it before.")
        return
    console.print(f"broadcast #{created.id}: {created.recipients:,} recipients")
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
    for col in ("channel", "language", "encoding", "segments", "characters", "text"):
        texts.add_column(col, overflow="fold")
    for c in pv.texts:
        texts.add_row(c.channel, c.language, c.encoding, str(c.segments) if c.encoding != "text" else "-",
                      str(c.characters), c.sample)
    console.print(texts)
    if pv.segments:
        console.print(f"SMS cost: about {pv.segments:,} segments")
    for w in pv.warnings:
        console.print(f"[yellow]note:[/yellow] {w}")


def _print_held(console, p) -> None:
    if p and p.n("held"):
        console.print(f"{p.n('held'):,} SMS are held for quiet hours; the first go out at {_when(p.next_release)} "
                      f"(`firma worker` sends them)")


def _send_foreground(console, rt, created, senders) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bots import broadcasts as svc
    from bots.broadcast_worker import Options, run_worker

    columns = (TextColumn("[bold]#{task.fields[bid]}"), BarColumn(),
               TextColumn("sent {task.fields[sent]:,}  failed {task.fields[failed]:,}  held {task.fields[held]:,}  "
                          "{task.fields[rate]:.1f} msg/s"), TimeElapsedColumn())
    state = {"t": time.monotonic(), "sent": 0, "rate": 0.0}
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("send", total=created.recipients, bid=created.id, sent=0, failed=0, held=0, rate=0.0)

        async def tick(_stats):
            p = await asyncio.to_thread(svc.progress, rt, created.id)
            now = time.monotonic()
            sent = p.n("sent", "delivered")
            if now - state["t"] >= 0.5:
                state["rate"] = (sent - state["sent"]) / (now - state["t"])
                state["t"], state["sent"] = now, sent
            bar.update(task, completed=p.done + p.n("held"), sent=sent, failed=p.n("failed", "unknown"),
                       held=p.n("held"), rate=state["rate"])

        try:
            run_worker(rt, Options(drain=True, broadcast_id=created.id), senders, on_progress=tick)
        except KeyboardInterrupt:
            console.print("stopped: what is left stays queued for `firma worker`")
        p = svc.progress(rt, created.id)
        bar.update(task, completed=p.done + p.n("held"), sent=p.n("sent", "delivered"),
                   failed=p.n("failed", "unknown"), held=p.n("held"))
    console.print(_summary(p))
    _print_held(console, p)


def _summary(p) -> str:
    parts = [f"{s} {p.counts[s]:,}" for s in ("sent", "delivered", "failed", "skipped", "unknown", "held", "pending")
             if p.counts.get(s)]
    return f"broadcast #{p.broadcast.id}: " + (", ".join(parts) or "nothing to send")


@broadcast.command("status")
@click.argument("broadcast_id", required=False, type=int)
@click.option("--limit", default=20, show_default=True, help="How many recent broadcasts to list.")
@click.pass_context
def status(ctx: click.Context, broadcast_id: int | None, limit: int):
    """List recent broadcasts with their counts, or show one."""
    from rich.console import Console
    from rich.table import Table

    from bots import broadcasts as svc

    rt = _runtime(ctx)
    console = Console()
    rows = [svc.progress(rt, broadcast_id)] if broadcast_id else svc.list_broadcasts(rt, limit)
    if broadcast_id and rows[0] is None:
        raise click.ClickException(f"no broadcast #{broadcast_id}")
    t = Table(title="Broadcasts")
    cols = ("id", "created", "campaign", "to", "recipients", "pending", "held", "sending", "sent", "delivered",
            "failed", "skipped", "unknown", "finished")
    for c in cols:
        t.add_column(c, justify="right" if c not in ("created", "campaign", "to", "finished") else "left")
    for p in rows:
        b = p.broadcast
        to = " ".join(x for x in (b.channel, b.state or "", f"zip {b.zip_prefix}*" if b.zip_prefix else "",
                                  f"since {b.signed_since:%Y-%m-%d}" if b.signed_since else "") if x)
        t.add_row(str(b.id), _when(b.created_at), b.campaign, to, f"{b.recipients:,}",
                  *(f"{p.counts.get(s, 0):,}" for s in ("pending", "held", "sending", "sent", "delivered", "failed",
                                                         "skipped", "unknown")),
                  _when(b.finished_at))
    console.print(t)
    if broadcast_id:
        b = rows[0].broadcast
        if b.cancelled_at:
            console.print(f"cancelled by {b.cancelled_by} at {_when(b.cancelled_at)}: "
                          f"{rows[0].counts.get('skipped', 0):,} messages skipped")
        _print_held(console, rows[0])


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
            click.confirm(f"Stop broadcast #{broadcast_id}? {p.n('pending', 'held'):,} of its "
                          f"{p.broadcast.recipients:,} messages have not gone out yet and will not be sent", abort=True)
    result = svc.cancel_broadcast(rt, broadcast_id, by="cli")
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
    """Send queued broadcast deliveries (any number of workers, on any number of hosts, with PostgreSQL)."""
    from bots import broadcast_plan
    from bots.broadcast_worker import Options, run_worker

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

