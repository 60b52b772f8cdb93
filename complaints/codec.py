"""Residents' data encrypted in Temporal: an AES-256-GCM payload codec with rotating keys.

Every payload the engine hands Temporal (workflow and activity inputs and results,
updates, signals, queries, failures' messages and stack traces) is encrypted before it
leaves the process, so Temporal's history, its database and its Web UI hold ciphertext
only. The worker, the CLI, the web app and the codec server (``/codec``, for operators
in the Web UI) decrypt with the same key set.

**Keys.** ``PAYLOAD_KEYS`` (``id:base64key`` pairs, comma separated) or
``PAYLOAD_KEYS_FILE`` (one ``id base64key`` per line, ``#`` comments), never the repo.
Each key is 32 random bytes (``complaints keys new`` makes one). The *last* key listed
encrypts; every listed key decrypts, so a key is rotated by appending a new one and
keeping the old ones for as long as histories encrypted with them are kept (the
namespace's retention). With neither set, the key file in the data folder is used, made
(``0600``) with one new key on first use: right for ``complaints dev`` and a single
machine; a deployment sets ``PAYLOAD_KEYS`` from its secret store.

**What is written.** ``metadata = {"encoding": "binary/encrypted", "encryption-key-id":
id}``, ``data = nonce (12 bytes) || AES-GCM(original payload, bound to the key id)``. The
original payload (its own metadata too: encoding and message type) is serialised whole.
Payloads written before the codec (no such encoding) pass through unchanged, so old
histories still replay. Temporal never encodes search attributes, memos, workflow ids,
summaries or current details: the workflow keeps personal data out of those itself.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from complaints.files import create_private_file, make_private_dir
from complaints.settings import Settings

__all__ = [
    "ENCRYPTED",
    "KEY_ID",
    "EncryptionCodec",
    "KeyProblem",
    "KeySet",
    "check_key_id",
    "data_converter",
    "default_key_file",
    "keys_for",
    "load_keys",
    "new_key_line",
    "parse_keys",
]

#: The encoding of an encrypted payload, and the metadata field naming its key.
ENCRYPTED = b"binary/encrypted"
KEY_ID = "encryption-key-id"
#: The key file's name in the data folder (when neither setting names keys).
KEY_FILE_NAME = "payload-keys"
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,40}")


class KeyProblem(ValueError):
    """A key set that cannot be used, or a payload no key here decrypts: what to do."""


@dataclasses.dataclass(frozen=True)
class KeySet:
    """The keys this process holds: ``current`` encrypts, every one decrypts."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyProblem(f"the current key {self.current!r} is not in the key set")

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids, current last (as listed)."""
        return tuple(self.keys)


def check_key_id(key_id: str, where: str) -> None:
    """Refuse a key id that is not 1-40 letters, digits, '-', '_' or '.'.

    Raises:
        KeyProblem: It is not.

    """
    if not _KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyProblem(f"{where}: key id {key_id[:40]!r} is not 1-40 letters, digits, "
                         "'-', '_' or '.'")


def parse_keys(pairs: Iterable[tuple[str, str]], where: str) -> KeySet:
    """A key set from ``(id, base64 key)`` pairs in order; the last is current.

    Raises:
        KeyProblem: No key, a bad id, a repeated id, or a key that is not 32 bytes of
            base64; the message names ``where`` and never the key.

    """
    keys: dict[str, bytes] = {}
    for key_id, encoded in pairs:
        check_key_id(key_id, where)
        if key_id in keys:
            raise KeyProblem(f"{where}: key id {key_id!r} is listed twice; give each key "
                             "its own id")
        # Standard or URL-safe base64, padded or not.
        text = encoded.strip().replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise KeyProblem(f"{where}: key {key_id!r} is not {KEY_BYTES} bytes in base64; "
                             "make one with `complaints keys new`")
        keys[key_id] = raw
    if not keys:
        raise KeyProblem(f"{where}: no key; make one with `complaints keys new`")
    return KeySet(keys=keys, current=list(keys)[-1])


def _env_pairs(value: str) -> list[tuple[str, str]]:
    pairs = []
    for item in value.split(","):
        if not item.strip():
            continue
        key_id, sep, encoded = item.strip().partition(":")
        if not sep:
            raise KeyProblem("PAYLOAD_KEYS: each entry is id:base64key, comma separated")
        pairs.append((key_id.strip(), encoded.strip()))
    return pairs


def _file_pairs(path: Path) -> list[tuple[str, str]]:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise KeyProblem(f"{path} can be read by other users (mode {oct(mode & 0o777)}): "
                         f"run `chmod 600 {path}`")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(":", " ", 1).split()
        if len(parts) != 2:
            raise KeyProblem(f"{path} line {number}: expected 'id base64key'")
        pairs.append((parts[0], parts[1]))
    return pairs


def new_key_line(key_id: str | None = None) -> str:
    """A new key as a key file's line: ``id base64key`` (the id dated if none given).

    Raises:
        KeyProblem: ``key_id`` is not a usable id.

    """
    key_id = key_id or "k" + dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    check_key_id(key_id, "--id")
    encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    return f"{key_id} {encoded}"


def default_key_file(data_dir: Path) -> Path:
    """The key file used when neither ``PAYLOAD_KEYS`` nor ``PAYLOAD_KEYS_FILE`` is set."""
    return data_dir / KEY_FILE_NAME


def load_keys(payload_keys: str | None, payload_keys_file: Path | None,
              data_dir: Path) -> KeySet:
    """The key set from the settings (see the module docstring for the order).

    Raises:
        KeyProblem: The keys named cannot be used (the message says how to fix it).

    """
    if payload_keys:
        return parse_keys(_env_pairs(payload_keys), "PAYLOAD_KEYS")
    if payload_keys_file is not None:
        if not payload_keys_file.is_file():
            raise KeyProblem(f"PAYLOAD_KEYS_FILE {payload_keys_file} does not exist: create "
                             "it with `complaints keys new >> FILE` and chmod 600")
        return parse_keys(_file_pairs(payload_keys_file), str(payload_keys_file))
    path = default_key_file(data_dir)
    make_private_dir(data_dir)
    if create_private_file(path):
        # Written once, right after an exclusive create: a second process that loses the
        # race reads it below (and retries briefly if it is still empty).
        with path.open("w", encoding="utf-8") as out:
            out.write("# Payload encryption keys (complaints.codec): the last one encrypts.\n"
                      "# Back this file up with the database: without it, histories "
                      "cannot be read.\n" + new_key_line() + "\n")
    for _ in range(50):
        pairs = _file_pairs(path)
        if pairs:
            return parse_keys(pairs, str(path))
        time.sleep(0.02)
    raise KeyProblem(f"{path} holds no key: add one with `complaints keys new >> {path}`")


def keys_for(settings: Settings) -> KeySet:
    """The key set ``settings`` name (see :func:`load_keys`)."""
    secret = settings.payload_keys
    return load_keys(secret.get_secret_value() if secret else None,
                     settings.payload_keys_file, settings.data_dir)


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, with the key id in the clear beside each."""

    def __init__(self, keys: KeySet) -> None:
        """Use ``keys``: ``keys.current`` encrypts, each key decrypts its own payloads."""
        self.keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}
        self._current_id = keys.current.encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the current key."""
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each encrypted payload; pass others (from before the codec) through."""
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, encrypted with the current key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.keys.current].encrypt(
            nonce, payload.SerializeToString(), self._current_id)
        return Payload(metadata={"encoding": ENCRYPTED, KEY_ID: self._current_id},
                       data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """One payload, decrypted (or as it was, if it was never encrypted).

        Raises:
            KeyProblem: Its key is not held here, or it fails authentication (altered,
                or a different key under the same id).

        """
        if payload.metadata.get("encoding") != ENCRYPTED:
            return payload
        raw_id = payload.metadata.get(KEY_ID, b"")
        key_id = raw_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyProblem(f"a payload is encrypted with key {key_id[:40]!r}, which this "
                             "process does not hold: add it to PAYLOAD_KEYS or "
                             "PAYLOAD_KEYS_FILE (keep old keys when rotating)")
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_id)
        except InvalidTag:
            raise KeyProblem(f"a payload under key {key_id!r} fails authentication: it was "
                             "altered, or the key with that id is not the one that "
                             "encrypted it") from None
        original = Payload()
        original.ParseFromString(plain)
        return original


def data_converter(keys: KeySet) -> DataConverter:
    """The engine's converter: pydantic payloads, encrypted, with failures encoded too.

    Failure messages and stack traces are moved into the encrypted attributes (the
    default leaves them in the clear), because an exception may quote a payload.
    """
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
