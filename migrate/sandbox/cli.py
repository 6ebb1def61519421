import click


@click.group()
def sandbox():
    """The embedded Cloudflare emulator."""
