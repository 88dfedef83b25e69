"""Walking a dataset folder: every real file once, symlink loops cut, unreadable folders reported.

``os.walk(followlinks=True)`` follows a link back to an ancestor until the path is too long (one
file became 41 utterances) and skips a folder it may not list without a word. This walker:

* follows symbolic links (dataset folders made of links are common) but enters each real folder
  once, so a loop or a second link to the same folder adds nothing;
* reports each real file (same device and inode) once, preferring a path without symbolic links
  over a link to it: real folders and files are walked before any link is followed;
* yields a folder it cannot list as an entry with its ``problem`` ("permission denied"), so
  callers can count it as failed instead of losing its files silently;
* yields a file it cannot stat (a broken link, a link loop) without an identity, so loading it
  later fails with the right reason rather than the file vanishing.

Example:
    >>> import tempfile, pathlib, os
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "a.wav").write_bytes(b"x"); os.symlink(d, d / "loop")
    1
    >>> [e.path.name for e in walk(d)]
    ['a.wav']
"""

from __future__ import annotations

import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from speechunits.audio.errors import os_error_reason


@dataclass(frozen=True)
class Entry:
    """A file found under the folder (``path`` as found, links not resolved), or a folder that
    could not be listed (``problem`` says why)."""

    path: Path
    identity: tuple[int, int] | None = None  # (device, inode) of the real file, None if unknown
    problem: str | None = None


class ScanError(OSError):
    """The folder itself cannot be listed; ``reason`` says why."""

    def __init__(self, folder: Path, reason: str) -> None:
        self.folder, self.reason = folder, reason
        super().__init__(f"{folder}: {reason}")


def walk(folder: str | os.PathLike) -> Iterator[Entry]:
    """Entries under ``folder`` (see the module docstring); raises ``ScanError`` for the folder."""
    folder = Path(folder)
    try:
        root = os.stat(folder)
        with os.scandir(folder):
            pass
    except OSError as e:
        raise ScanError(folder, os_error_reason(e)) from None
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    pending = deque([(folder, (root.st_dev, root.st_ino))])  # real folders, depth first
    links: deque[Path] = deque()  # links, followed once everything real has been seen
    while pending or links:
        if not pending:
            link = links.popleft()
            try:
                st = os.stat(link)
            except OSError:  # broken or looping: a file entry, so loading it says which
                yield Entry(link)
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                pending.append((link, key))
            elif key not in seen_files:
                seen_files.add(key)
                yield Entry(link, key)
            continue
        d, key = pending.pop()
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(d) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield Entry(d, key, os_error_reason(e))
            continue
        subdirs = []
        for child in children:
            p = Path(child.path)
            try:
                if child.is_symlink():
                    links.append(p)
                elif child.is_dir(follow_symlinks=False):
                    st = child.stat(follow_symlinks=False)
                    subdirs.append((p, (st.st_dev, st.st_ino)))
                else:
                    st = child.stat(follow_symlinks=False)
                    fkey = (st.st_dev, st.st_ino)
                    if fkey not in seen_files:
                        seen_files.add(fkey)
                        yield Entry(p, fkey)
            except OSError:
                yield Entry(p)
        pending.extend(reversed(subdirs))  # popped in sorted order
