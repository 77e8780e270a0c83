"""Where a command may write: checks made before any work, and folders built aside then swapped in.

Every command of the suite follows one rule (docs/commands.md): a bad output path is
refused with one ``InputError`` naming it before anything is read or written; an output
that is one of the command's inputs is refused; a folder is written in a hidden sibling
and renamed into place only when complete, so a failure leaves any earlier output as it
was; and ``--overwrite`` replaces only a folder the suite made (it carries ``MARK``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from suite.errors import InputError

#: The file the suite leaves in every folder it makes, so --overwrite can tell its own.
MARK = ".decision-curves"


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_parent(path: Path, option: str) -> None:
    """Refuse a path under a file or in a folder this process cannot write."""
    anc = _nearest_existing(path.parent)
    if not anc.is_dir():
        raise InputError(f"{path}: {anc} is a file, not a folder; choose another {option}")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write in {anc} (permission denied); "
                         f"choose another {option}")


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike],
                    option: str = "--out") -> None:
    """Refuse an output path that is (or, for a folder, contains or lies inside) an input."""
    out = Path(out)
    ro = out.resolve()
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        ri = inp.resolve()
        if _same_path(out, inp):
            raise InputError(f"{out}: {option} is also an input ({inp}); writing it would destroy "
                             "the input — choose another output path")
        if ro in ri.parents and out.is_dir():
            raise InputError(f"{out}: {option} holds the input {inp}; writing it would destroy "
                             "the input — choose another output path")


def check_output_file(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                      option: str = "--out") -> Path:
    """Check that ``path`` can be written as a file; returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; {option} takes a file name here")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{path}: exists and is not writable; choose another {option}")
    _check_parent(path, option)
    check_not_input(path, inputs, option)
    return path


def is_suite_folder(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder the suite made (it holds ``MARK``)."""
    return (Path(path) / MARK).is_file()


def mark_folder(path: str | os.PathLike, command: str) -> None:
    """Leave the suite's mark in a folder it made."""
    from suite.atomic import atomic_write_text
    from suite.provenance import SUITE_VERSION

    atomic_write_text(Path(path) / MARK, json.dumps(
        {"made_by": command, "suite_version": SUITE_VERSION}) + "\n")


def check_output_folder(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                        option: str = "--out", overwrite: bool = False) -> Path:
    """Check that ``path`` can be (re)written as a folder; returns it as a Path.

    A non-empty folder needs ``overwrite``, and then only one the suite made is replaced.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder; choose another {option}")
    _check_parent(path, option)
    check_not_input(path, inputs, option)
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise InputError(f"{path}: output folder is not empty; choose a new folder or pass "
                             "--overwrite")
        if not is_suite_folder(path):
            raise InputError(f"{path}: not empty and not made by this suite (no {MARK} file); "
                             "refusing to replace it — delete it yourself or "
                             f"choose another {option}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{path}: not writable; choose another {option}")
    return path


def remove_suite_folder(path: str | os.PathLike) -> None:
    """Delete a folder only if the suite made it (or it is empty); otherwise refuse."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir() and (is_suite_folder(path) or not any(path.iterdir())):
        shutil.rmtree(path)
        return
    raise InputError(f"{path}: not made by this suite (no {MARK} file); refusing to delete it — "
                     "delete it yourself or choose another output")


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``, replacing an earlier ``out`` only at the
    end."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


@contextlib.contextmanager
def building_folder(out: str | os.PathLike, command: str) -> Iterator[Path]:
    """Yield a hidden sibling of ``out`` to write into; on success mark it and swap it in.

    On any failure (an exception, Ctrl-C) the partial folder and any parents this call
    created are removed, and an existing ``out`` is left untouched. Check ``out`` with
    ``check_output_folder`` first.
    """
    out = Path(out)
    created, parent = [], out.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        # mkdtemp makes 0700; give the folder what an ordinary mkdir would under the umask
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        yield tmp
        mark_folder(tmp, command)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
