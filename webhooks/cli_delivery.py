"""`firma deliver` and `firma flyer`: the PDFs an organization hands the petition's target, and prints."""

from __future__ import annotations

import click

from webhooks.cli_output import write_atomically


@click.command()
@click.option("--campaign", "slug", required=True, help="Campaign slug, like end-scomm.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="PDF to write (default SLUG-delivery.pdf).")
@click.option("--state", help="Only the signers of one state (its postal code, like IL).")
@click.option("--names", type=click.Choice(["full", "short", "none"]), default="full", show_default=True,
              help="full names; short: first name and last initial; none: no names, each city's count.")
@click.option("--language", type=click.Choice(["en", "es"]), default="en", show_default=True,
              help="Language of the document's words.")
@click.pass_context
def deliver(ctx: click.Context, slug: str, output: str | None, state: str | None, names: str, language: str):
    """The delivery package: a PDF with a cover and the signers grouped by state."""
    from bots import delivery

    rt = ctx.find_root().obj.ready_runtime()
    try:
        req = delivery.check(rt, slug, state, names, language)
        path = output or f"{slug}-delivery.pdf"
        write_atomically(path, delivery.render(rt, req))
    except delivery.DeliveryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path}", err=True)


@click.command()
@click.option("--campaign", "slug", required=True, help="Campaign slug, like end-scomm.")
@click.option("--language", type=click.Choice(["en", "es"]), default="en", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="PDF to write (default SLUG-flyer.pdf).")
@click.pass_context
def flyer(ctx: click.Context, slug: str, language: str, output: str | None):
    """A one-page Letter flyer: "Text KEYWORD to NUMBER" and a QR code for each way to sign."""
    from bots import flyer as flyers

    rt = ctx.find_root().obj.ready_runtime()
    try:
        ways = flyers.ways_to_sign(rt, slug, language)
        data = flyers.render(rt, slug, language, ways)
    except flyers.FlyerError as exc:
        raise click.ClickException(str(exc)) from None
    path = output or f"{slug}-flyer.pdf"
    write_atomically(path, [data])
    click.echo(f"wrote {path}", err=True)
