"""Private data files: residents' details readable by the engine's own user only.

The complaints database (with SQLite's ``-wal``, ``-shm`` and ``-journal`` files beside
it), the Temporal dev server's ``temporal.db``, the letters outbox and the data folder hold
residents' names, addresses and complaint text. They are created ``0600`` (files) in
``0700`` folders whatever the process umask, and ones left group- or world-readable by an
earlier version are tightened when the CLI, ``complaints dev`` or the worker starts, with
a log line saying so.

Only these known paths are touched: never a folder the engine did not make its own (a
data folder that is the working directory or the home folder is left alone and reported).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "PRIVATE_UMASK",
    "create_private_file",
    "make_private_dir",
    "private_sqlite_database",
    "private_umask",
    "secure_data_files",
    "sqlite_companions",
    "sync_dir",
    "tighten",
    "write_private_files",
]

#: The mode of every data file the engine creates.
PRIVATE_FILE = 0o600
#: The mode of every data folder the engine creates.
PRIVATE_DIR = 0o700
#: The umask the worker and ``complaints dev`` run under (and give the Temporal server).
PRIVATE_UMASK = 0o077
#: The files SQLite keeps beside a database (they get the database file's own mode).
SQLITE_SUFFIXES = ("-wal", "-shm", "-journal")

# stdlib logging, not structlog: the plain CLI configures no logging, and structlog's
# default would print to stdout, into `--json` output. Unconfigured, a warning goes to
# stderr; under the worker and `complaints dev` it is a structured line like the rest.
log = logging.getLogger("complaints.files")


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run the block with umask ``077`` (no group or other bits), then restore the old one.

    A safety net for files created by code that does not set a mode itself; the paths
    this module knows are created with explicit modes regardless.
    """
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def make_private_dir(path: Path, *, durable: bool = False) -> Path:
    """Create ``path`` and any missing parents as ``0700`` folders; return ``path``.

    Folders that exist already are left as they are (``tighten`` is for those): a parent
    such as ``/srv`` is not the engine's to change.

    Args:
        path: The folder.
        durable: Flush each new folder's entry in its parent to disk (``sync_dir``), so
            that a power loss cannot take away a folder whose files were flushed.

    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made concurrently: check it below
            folder.mkdir(mode=PRIVATE_DIR)
            # mkdir's mode passes through the umask; set it exactly.
            os.chmod(folder, PRIVATE_DIR)
            if durable:
                sync_dir(folder.parent)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def sync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries to disk: files created or renamed into it, new folders.

    A file's own ``fsync`` does not make its name durable. Until its folder is flushed
    too, a power loss (not a killed process: the kernel has the name) can leave the old
    file, or none, under that name.
    """
    handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_private_files(folder: Path, files: Mapping[str, str | bytes]) -> None:
    """Write each file into ``folder`` whole or not at all, ``0600``, durably.

    Each is written to a temporary name, flushed, and renamed into place, so a reader
    sees the old file or the whole new one; then the folder is flushed once
    (``sync_dir``), so that after a power loss each name still points at its whole new
    file. The folder and its missing parents are made ``0700`` and flushed into theirs.
    Text is written as UTF-8.

    Args:
        folder: Where the files go.
        files: File name -> content.

    """
    make_private_dir(folder, durable=True)
    for name, content in files.items():
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            os.fchmod(fd, PRIVATE_FILE)  # mkstemp's own mode, said rather than relied on
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    sync_dir(folder)


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode ``0600`` unless it exists; True if created.

    The mode is right from the first byte (``O_EXCL`` creation, then an exact ``fchmod``
    whatever the umask), so there is no moment when another user could open it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def _tighten_one(path: Path) -> bool:
    """Remove the group and other bits of one path; True if they were there."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode) or not mode & 0o077:
        return False  # links have no mode of their own; already private
    os.chmod(path, stat.S_IMODE(mode) & 0o700)
    return True


def tighten(path: Path, *, recursive: bool = False) -> int:
    """Make ``path`` (and with ``recursive`` everything under it) private to its owner.

    Group and other permission bits are removed; the owner's are kept. A path that cannot
    be changed (another user's) is logged and skipped: the engine still runs.

    Returns:
        How many paths were tightened.

    """
    changed = 0
    todo = [path]
    while todo:
        current = todo.pop()
        try:
            changed += _tighten_one(current)
            if recursive and current.is_dir() and not current.is_symlink():
                with os.scandir(current) as entries:
                    todo.extend(Path(e.path) for e in entries)
        except OSError as exc:
            log.warning("cannot make %s private (%s): fix its permissions by hand",
                        current, exc.strerror or type(exc).__name__)
    return changed


def sqlite_companions(database: Path) -> list[Path]:
    """A SQLite database file and the journal files SQLite keeps beside it."""
    return [database, *(database.with_name(database.name + s) for s in SQLITE_SUFFIXES)]


def private_sqlite_database(path: Path) -> None:
    """Create a SQLite database file ``0600`` in ``0700`` folders, or tighten the old one.

    SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's own
    mode, so a database created private (before SQLite would create it, ``0644`` less the
    umask) keeps them private too; ones left readable by an earlier version are tightened.
    """
    make_private_dir(path.parent)
    if create_private_file(path):
        return
    for companion in sqlite_companions(path):
        _report(tighten(companion), companion)


def _report(changed: int, what: Path) -> None:
    if changed:
        log.warning("made %s private: removed group/other access from %d path%s",
                    what, changed, "" if changed == 1 else "s")


def secure_data_files(data_dir: Path, *, outbox: Path | None = None,
                      databases: Iterable[Path] = ()) -> int:
    """Create the data folder privately and tighten the data files already there.

    Args:
        data_dir: The data folder: made ``0700``, and within it ``complaints.db`` and
            ``temporal.db`` with their SQLite companions and ``temporal.log`` made
            private. Nothing else in it is touched.
        outbox: The letters outbox, made private with everything under it (a walk of
            every file: the worker's start, once).
        databases: Other SQLite database files in use (with their companions).

    Returns:
        How many paths were tightened (each tightened root is logged).

    """
    make_private_dir(data_dir)
    changed = 0
    resolved = data_dir.resolve()
    if resolved in (Path.cwd().resolve(), Path.home().resolve(), Path("/")):
        log.warning("the data folder %s is also the working or home folder: it is not "
                    "made private; set DATA_DIR to a folder of its own", data_dir)
    else:
        n = tighten(data_dir)
        _report(n, data_dir)
        changed += n
    files = [*sqlite_companions(data_dir / "complaints.db"),
             *sqlite_companions(data_dir / "temporal.db"), data_dir / "temporal.log",
             *(p for db in databases for p in sqlite_companions(db))]
    for path in dict.fromkeys(files):  # in order, each once
        n = tighten(path)
        _report(n, path)
        changed += n
    if outbox is not None:
        n = tighten(outbox, recursive=True)
        _report(n, outbox)
        changed += n
    return changed
