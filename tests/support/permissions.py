"""Make a file or folder unwritable for one block of a test, for this process, root included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import suite.outputs


@contextmanager
def unwritable(path: Path) -> Iterator[Path]:
    """``path`` may not be written while the block runs; its mode is restored afterwards.

    The mode becomes 0o500 (a folder) or 0o400 (a file). Modes do not stop root, so as root
    ``os.access`` also answers no to writing ``path``, patched where ``suite.outputs`` — which
    every command's output check goes through — looks it up (the one ``os`` module, so every
    other caller sees the same answer). Only writing is refused; reading still works.
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o7777
    path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        if os.geteuid() == 0:
            real_access = os.access
            target = path.resolve()

            def access(p, mode, *args, **kwargs):
                if mode & os.W_OK and Path(p).resolve() == target:
                    return False
                return real_access(p, mode, *args, **kwargs)

            with mock.patch.object(suite.outputs.os, "access", access):
                yield path
        else:
            yield path
    finally:
        path.chmod(mode)
