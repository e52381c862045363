"""The data folder is private: made 0700, refused when another user could write to it.

The data folder holds the database (SQLite), the Center's signing key and
session secret, the development CA, the Controller's keys, mail outbox, logs
and the demo ticket: enough to impersonate the Center or join any event.
``open_data_folder`` is called by ``config.load_settings``, the one way every
command (``townhall center``, ``migrate``, ``users add``, ``up``, the
Controller) gets its settings, so whichever runs first makes the folder
private. Files inside are private by the process's umask (``cli.main`` sets
0077: see there why), and ``store.make_engine`` creates a SQLite file 0600
itself. ``docs/security.md`` says what lives here.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("townhall")

PRIVATE_UMASK = 0o077


class DataFolderError(ValueError):
    """The data folder cannot be used safely; the message says what to do."""


def open_data_folder(folder: Path) -> None:
    """Make ``folder`` (0700) if it does not exist; refuse it if others could write to it.

    A folder another user can write to (group- or world-writable, or owned by
    someone else) could already hold their files: a database or key planted
    there, or a link where the Center will write its key. It is refused, never
    repaired, so that its owner looks at it first. One that others can only
    read is used, with a warning saying how to close it.
    """
    try:
        folder.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    else:
        folder.chmod(0o700)  # mkdir's mode went through the umask
        return
    info = folder.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode):
        raise DataFolderError(f"the data folder {folder} is not a folder")
    if info.st_uid != os.geteuid():
        raise DataFolderError(
            f"the data folder {folder} belongs to user id {info.st_uid}, not to the user "
            f"running townhall ({os.geteuid()}): that user could change what is in it; "
            "run townhall as the folder's owner, or give it a folder of its own"
        )
    if mode & 0o022:
        raise DataFolderError(
            f"the data folder {folder} can be written by other users (mode {mode:04o}), "
            "who could plant or swap its keys and database: townhall refuses to use it. "
            f"Check what is in it, then: chmod 700 {folder}"
        )
    if mode & 0o077:
        log.warning(
            "the data folder %s can be read by other users (mode %04o), and it holds keys "
            "and the database: chmod 700 %s",
            folder,
            mode,
            folder,
        )
