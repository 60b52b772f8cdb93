"""``complaints keys new|show``: the payload encryption keys (:mod:`complaints.codec`).

``new`` prints a fresh key as a key file's line (``id base64key``): append it to the key
file (or add ``id:base64key`` to ``PAYLOAD_KEYS``) to rotate; the last key listed
encrypts, every key listed decrypts. ``show`` lists the key ids in force and which one
encrypts, never a key.
"""

from __future__ import annotations

import click

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add the ``keys`` group to ``cli``."""

    @cli.group(help="Payload encryption keys: make one, or show the ids in force.")
    def keys() -> None:
        pass

    @keys.command("new", help=(
        "Print a new 256-bit key as 'id base64key'. Rotate by appending it to "
        "PAYLOAD_KEYS_FILE (or adding id:key to PAYLOAD_KEYS) everywhere the engine runs, "
        "keeping the old keys while histories encrypted with them are kept."))
    @click.option("--id", "key_id", default=None, metavar="ID",
                  help="The key's id (default: k + the UTC time, e.g. k20261126203000).")
    def keys_new(key_id: str | None) -> None:
        from complaints.codec import KeyProblem, new_key_line

        try:
            click.echo(new_key_line(key_id))
        except KeyProblem as exc:
            raise click.ClickException(str(exc)) from None

    @keys.command("show", help="List the key ids in force (never the keys); the last encrypts.")
    def keys_show() -> None:
        from complaints.codec import KeyProblem, keys_for
        from complaints.settings import Settings

        settings = Settings()
        try:
            key_set = keys_for(settings)
        except KeyProblem as exc:
            raise click.ClickException(str(exc)) from None
        source = ("PAYLOAD_KEYS" if settings.payload_keys else
                  str(settings.payload_keys_file or settings.data_dir / "payload-keys"))
        click.echo(f"keys from {source}:")
        for key_id in key_set.ids:
            click.echo(f"  {key_id}" + ("  (encrypts new payloads)"
                                         if key_id == key_set.current else ""))
