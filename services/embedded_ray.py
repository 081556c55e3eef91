"""What the embedded Ray of `inkwalk render`/`demo`/`serve` leaves on the machine and the terminal.

Its session folder is a private folder inside ``RAY_TMPDIR`` when that is set, else in /tmp
(private, so it never joins another Ray on a shared machine). Ray puts its sockets in that
folder and refuses socket paths longer than AF_UNIX allows, so a ``RAY_TMPDIR`` too long for
them falls back to /tmp, with a warning. After a successful run the folder is removed; after a
failure it is kept for Ray's logs, and its path printed. Ray and Serve INFO lines reach the
terminal only when asked for (``-v``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from inkwalk.cli import Terminated
from inkwalk.errors import InkwalkError

FALLBACK_PARENT = "/tmp"
FOLDER_PREFIX = "iw"
# The longest path Ray makes in its temp folder: a socket in the session folder, whose name has
# the date to the microsecond and the driver's pid (at most 7 digits on Linux).
LONGEST_SOCKET = "/session_2026-12-31_23-59-59_999999_4194304/sockets/plasma_store"
PRIVATE_FOLDER = f"/{FOLDER_PREFIX}" + "x" * 8  # tempfile.mkdtemp adds 8 characters to the prefix

log = logging.getLogger(__name__)


def _fits_ray_sockets(parent: str) -> bool:
    from ray._private.utils import validate_socket_filepath  # Ray's own check, with the platform's limit

    try:
        validate_socket_filepath(os.path.abspath(parent) + PRIVATE_FOLDER + LONGEST_SOCKET)
    except OSError:
        return False
    return True


def session_parent() -> str:
    """Where the embedded Ray's private folder goes: ``RAY_TMPDIR`` if set and short enough, else /tmp."""
    wanted = os.environ.get("RAY_TMPDIR")
    if not wanted:
        return FALLBACK_PARENT
    if _fits_ray_sockets(wanted):
        return wanted
    log.warning("RAY_TMPDIR=%s is too long for Ray's socket paths (AF_UNIX); Ray's files go to %s instead",
                wanted, FALLBACK_PARENT)
    return FALLBACK_PARENT


@contextmanager
def session_folder() -> Iterator[Path]:
    """A private temp folder for one embedded Ray, removed when the block succeeds.

    Shut Ray down inside the block. A user's mistake (InkwalkError), Ctrl-C or SIGTERM removes it
    too: Ray's logs would not explain them. Any other failure keeps it and says where.
    """
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=session_parent()))
    try:
        yield folder
    except (InkwalkError, KeyboardInterrupt, Terminated):
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except BaseException:
        print(f"Ray's session folder, with its logs, is kept in {folder}", file=sys.stderr, flush=True)
        raise
    try:
        shutil.rmtree(folder)
    except OSError as exc:  # a file Ray still holds: say so rather than fail a finished run
        print(f"could not remove Ray's session folder {folder}: {exc}", file=sys.stderr, flush=True)


def show_ray_info(verbose: bool) -> None:
    """Ray's and Serve's INFO lines on the terminal only when `verbose`; warnings always.

    Serve sets up its driver logger when `ray.serve` is first imported, so it is imported here,
    before its level is set.
    """
    import ray.serve  # noqa: F401  (configures the "ray.serve" logger)

    level = logging.INFO if verbose else logging.WARNING
    for name in ("ray", "ray.serve"):
        logging.getLogger(name).setLevel(level)


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """`-v`: the commands that run Ray show its and Serve's INFO lines and the workers' output."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray's and Serve's INFO lines and the Ray workers' output")
