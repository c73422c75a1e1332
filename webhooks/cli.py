"""The `firma` command line (interface.md, "CLI"). An entry point like the blueprints: it parses,
calls a service function, prints."""

from __future__ import annotations

import logging
import sys

import click

from config import redaction
from config.campaigns import CampaignFileError
from config.settings import Settings, SettingsError


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
            redaction.install(redaction.secrets_of(self._settings))
        return self._settings

    @property
    def runtime(self):
        if self._runtime is None:
            from bots.runtime import Runtime

            try:
                self._runtime = Runtime.build(self.settings)
            except CampaignFileError as exc:
                raise click.ClickException(f"the campaign file has problems: {exc}") from None
        return self._runtime

    def ready_runtime(self):
        """The runtime, once the database is usable (SQLite created or migrated; others at head)."""
        from storage import db

        logging.getLogger("alembic").setLevel(logging.WARNING)
        try:
            db.prepare(self.settings.database_url)
        except db.SchemaNotReady as exc:
            raise click.ClickException(str(exc)) from None
        return self.runtime


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="firma")
@click.pass_context
def main(ctx: click.Context):
    """firma: sign petitions by SMS and Telegram, and send updates to signers."""
    ctx.ensure_object(Context)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redaction.install()  # phone numbers masked in every log line; secrets added once settings are read


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--debug", is_flag=True, help="Flask's debugger and reloader (never in production).")
@pass_ctx
def serve(obj: Context, host: str, port: int, debug: bool):
    """Run the web app with the development server (SQLite is created or migrated here)."""
    from webhooks import create_app

    app = create_app({"SIMULATOR_OPEN": True}, obj.ready_runtime())
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


@db_group.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(obj: Context, revision: str):
    """Revert the migrations down to REVISION (for example -1, or base)."""
    from storage import db

    db.downgrade(obj.settings.database_url, revision)
    click.echo(f"database downgraded to {revision}")


@main.command()
@pass_ctx
def campaigns(obj: Context):
    """List campaigns, their keywords and signature counts (and check the campaign file)."""
    from rich.console import Console
    from rich.table import Table

    from bots import queries

    table = Table(title="Campaigns")
    for col in ("slug", "title", "keywords", "signatures", "goal", "active"):
        table.add_column(col, justify="right" if col in ("signatures", "goal") else "left")
    for row in queries.campaign_rows(obj.runtime):
        keywords = ", ".join(f"{w} ({lang})" for w, lang in row["keywords"].items())
        table.add_row(row["slug"], row["title"], keywords, f"{row['signatures']:,}", f"{row['goal']:,}",
                      "yes" if row["active"] else "no")
    Console().print(table)


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
        with open(output, "w", encoding="utf-8", newline="") as fh:
            for chunk in export_lines(rt, slug, include_contact):
                fh.write(chunk)
        click.echo(f"wrote {output}", err=True)
    else:
        out = click.get_text_stream("stdout", encoding="utf-8")
        for chunk in export_lines(rt, slug, include_contact):
            out.write(chunk)
        out.flush()


from webhooks.cli_staff import staff as _staff; main.add_command(_staff)  # noqa: E402,E702 (issue 5)

from webhooks.cli_member import member_group, purge  # noqa: E402 - reliability and security (issue 7)
main.add_command(member_group); db_group.add_command(purge)  # noqa: E702

from webhooks.cli_telegram import telegram_group  # noqa: E402 - Telegram commands (issue 3)
main.add_command(telegram_group)

from webhooks.cli_broadcast import register as _register_broadcast  # noqa: E402 - broadcast, worker (issue 4)
_register_broadcast(main)

from webhooks.cli_delivery import register as _register_delivery  # noqa: E402 - deliver, flyer
_register_delivery(main)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
