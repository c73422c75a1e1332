"""The `firma` command line (interface.md, "CLI"). An entry point like the blueprints: it parses,
calls a service function, prints."""

from __future__ import annotations

import logging
import os
import sys

import click

from config import redaction
from config.campaigns import CampaignFileError
from config.settings import Settings, SettingsError
from webhooks import cli_broadcast, cli_delivery, cli_member, cli_staff, cli_telegram
from webhooks.cli_output import write_atomically


class Context:
    """Builds the settings and the runtime on first use, turning config mistakes into clear errors."""

    def __init__(self):
        self._settings = None
        self._runtime = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
            from webhooks import redact_logs

            redact_logs(self._settings)
        return self._settings

    @property
    def runtime(self):
        """The runtime, once the database is usable (see ready_runtime)."""
        return self.ready_runtime()

    def _build_runtime(self):
        if self._runtime is None:
            from bots.runtime import Runtime

            try:
                self._runtime = Runtime.build(self.settings)
            except CampaignFileError as exc:
                raise click.ClickException(_campaign_problems(exc)) from None
        return self._runtime

    def ready_runtime(self):
        """The runtime, once the database is usable (SQLite created or migrated; others at head)."""
        if self._runtime is None:
            self.ready_database()
        return self._build_runtime()

    def ready_database(self) -> str:
        """Make the database usable (as ready_runtime) and return its URL."""
        from storage import db

        logging.getLogger("alembic").setLevel(logging.WARNING)
        try:
            db.prepare(self.settings.database_url)
        except db.SchemaNotReady as exc:
            raise click.ClickException(str(exc)) from None
        return self.settings.database_url


def _campaign_problems(exc: CampaignFileError) -> str:
    from bots.catalog import DATABASE_SOURCE

    if exc.path == DATABASE_SOURCE:  # stored under older rules: `firma campaigns import` a corrected file
        return f"the campaigns in the database have problems: {exc}"
    return f"the campaign file has problems: {exc}"


pass_ctx = click.make_pass_decorator(Context, ensure=True)

DEBUG_HINT = "FIRMA_DEBUG=1 or `firma --debug ...` shows the traceback"


def _debugging(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("firma.debug")) or os.environ.get("FIRMA_DEBUG", "").strip() not in ("", "0")


def _database_url(ctx: click.Context) -> str | None:
    obj = ctx.find_object(Context)
    if obj is not None and obj._settings is not None:
        return obj._settings.database_url
    return os.environ.get("FIRMA_DATABASE_URL", "").strip() or "sqlite:///firma.db"


class Guarded(click.Group):
    """The `firma` group: whatever goes wrong in a command reaches the operator as one line (what is
    wrong, what to do), with secrets redacted and a non-zero exit; never a traceback, unless asked for
    (FIRMA_DEBUG=1 or --debug), and then redacted too."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = redaction.install().redact_secrets(exc.message)
            raise
        except (click.exceptions.Abort, click.exceptions.Exit, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last word on any failure
            redactor = redaction.install()
            if _debugging(ctx):
                import traceback

                click.echo(redactor.redact("".join(traceback.format_exception(exc))), err=True, nl=False)
            from storage.db import describe_error

            line = describe_error(exc, _database_url(ctx) or "")
            if line is None:
                first = (str(exc).strip().splitlines() or [""])[0]
                line = f"{exc.__class__.__name__}{': ' + first if first else ''} ({DEBUG_HINT})"
            raise click.ClickException(redactor.redact(line)) from None


@click.group(cls=Guarded, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="firma")
@click.option("--debug", "debug", is_flag=True, help="Print the traceback of an unexpected error (redacted).")
@click.pass_context
def main(ctx: click.Context, debug: bool = False):
    """firma: sign petitions by SMS, WhatsApp and Telegram, and send updates to signers."""
    ctx.meta["firma.debug"] = debug
    ctx.ensure_object(Context)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per Telegram API call otherwise
    redaction.install()  # phone numbers masked in every log line; secrets added once settings are read


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--debug", is_flag=True, help="Flask's debugger and reloader (never in production).")
@pass_ctx
def serve(obj: Context, host: str, port: int, debug: bool):
    """Run the web app with the development server (SQLite is created or migrated here)."""
    from webhooks import create_app

    app = create_app({"SIMULATOR_OPEN": True, "CATALOG_WATCH": True}, obj.ready_runtime())
    click.echo(f"firma on http://{host}:{port}/  (simulator: http://{host}:{port}/simulator)")
    click.echo(f"database: {obj.runtime.db.url.render_as_string(hide_password=True)}")
    app.run(host=host, port=port, debug=debug, threaded=True, use_reloader=debug)


@main.group("db")
def db_group():
    """Database schema migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@pass_ctx
def db_upgrade(obj: Context, revision: str):
    """Apply the migrations to FIRMA_DATABASE_URL (up to REVISION, default the latest)."""
    from storage import db

    db.upgrade(obj.settings.database_url, revision)
    click.echo(f"database is at {revision}")
    if revision == "head":
        _seed(obj.settings)


def _seed(settings: Settings) -> None:
    """An empty database gets the campaign file's campaigns; after that the database has them."""
    from bots import catalog
    from bots.runtime import utcnow
    from storage.uow import Database

    database = Database(settings.database_url)
    try:
        catalog.seed_from_file(database, settings.campaigns_path, utcnow())
    except CampaignFileError as exc:
        raise click.ClickException(_campaign_problems(exc)) from None
    finally:
        database.dispose()


@db_group.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(obj: Context, revision: str):
    """Revert the migrations down to REVISION (for example -1, or base)."""
    from storage import db

    db.downgrade(obj.settings.database_url, revision)
    click.echo(f"database downgraded to {revision}")


@main.group(invoke_without_command=True)
@click.pass_context
def campaigns(ctx: click.Context):
    """List campaigns, their keywords and signature counts; `import` or `export` a campaign file.

    The campaigns live in the database: the campaign file (FIRMA_CAMPAIGNS) only fills an empty one."""
    if ctx.invoked_subcommand:
        return
    from rich.console import Console
    from rich.table import Table

    from bots import campaigns as svc

    table = Table(title="Campaigns")
    for col in ("slug", "title", "keywords", "signatures", "goal", "active"):
        table.add_column(col, justify="right" if col in ("signatures", "goal") else "left")
    for row in svc.list_campaigns(ctx.find_object(Context).ready_runtime()):
        keywords = ", ".join(f"{w} ({lang})" for w, lang in row["keywords"].items())
        table.add_row(row["slug"], row["title"], keywords, f"{row['signatures']:,}", f"{row['goal']:,}",
                      "yes" if row["active"] else "no")
    Console().print(table)


@campaigns.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and say what would change; change nothing.")
@pass_ctx
def campaigns_import(obj: Context, file: str, dry_run: bool):
    """Add or replace campaigns from a campaign file: all of them, or none if any has a problem.

    Campaigns only in the database stay; an [organization] table, when the file has one, replaces
    the organization's. Every process uses the result within seconds, without a restart."""
    from bots import campaigns as svc
    from config.campaigns import read_file

    try:
        data = read_file(file)
    except CampaignFileError as exc:
        raise click.ClickException(str(exc)) from None
    change = svc.import_campaigns(obj.ready_runtime(), data, svc.cli_actor(), source=file, dry_run=dry_run)
    if change.problems:
        raise click.ClickException(f"{file} has problems; nothing was imported:\n"
                                   + "\n".join(f"  - {p}" for p in change.problems))
    would = "would be " if dry_run else ""
    for slug in change.added:
        click.echo(f"campaign '{slug}' {would}added")
    for slug in change.replaced:
        click.echo(f"campaign '{slug}' {would}replaced")
    if change.organization_changed:
        click.echo(f"organization {would}replaced")
    if change.unchanged:
        click.echo(f"unchanged: {', '.join(change.unchanged)}")
    if not change.changed:
        click.echo("nothing to change: the database has these campaigns already")
    elif dry_run:
        click.echo("dry run: nothing was changed")


@campaigns.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File to write (default stdout).")
@pass_ctx
def campaigns_export(obj: Context, output: str | None):
    """Write the campaigns as a campaign file (`firma campaigns import` takes it back)."""
    from bots import campaigns as svc
    from config.campaigns import dumps

    text = dumps(svc.export_document(obj.ready_runtime()))
    if output:
        write_atomically(output, [text])
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("--campaign", "slug", required=True, help="Campaign slug, like end-scomm.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File to write (default stdout).")
@click.option("--include-contact", is_flag=True, help="Add the contact column (phone number or Telegram id).")
@pass_ctx
def export(obj: Context, slug: str, output: str | None, include_contact: bool):
    """CSV of a campaign's signatures (simulated signatures are never included)."""
    from bots.exports import export_lines

    rt = obj.runtime
    if slug not in rt.catalog.campaigns:
        raise click.BadParameter(f"no campaign {slug!r}; try: {', '.join(rt.catalog.campaigns)}", param_hint="--campaign")
    if output:
        write_atomically(output, export_lines(rt, slug, include_contact))
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.flush()
        out = sys.stdout.buffer  # UTF-8 bytes whatever the terminal's locale, lines ended by CRLF (RFC 4180)
        for chunk in export_lines(rt, slug, include_contact):
            out.write(chunk.encode("utf-8"))
        out.flush()


main.add_command(cli_staff.staff)
main.add_command(cli_member.member_group)
db_group.add_command(cli_member.purge)
main.add_command(cli_telegram.telegram_group)
main.add_command(cli_broadcast.broadcast)
main.add_command(cli_broadcast.worker)
main.add_command(cli_delivery.deliver)
main.add_command(cli_delivery.flyer)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
