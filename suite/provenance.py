"""What every output carries about how it was made: versions, command, time, code revision."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as _md
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SUITE_VERSION = "0.1.0"

_TRACKED = (
    "numpy", "scipy", "pillow", "scikit-image", "pandas", "matplotlib", "torch",
    "torchvision", "timm", "psychopy-lib", "starlette", "uvicorn", "statsmodels",
)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages the suite depends on (missing ones omitted)."""
    out = {"python": platform.python_version(), "suite": SUITE_VERSION}
    for name in (*_TRACKED, *extra):
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return out


def git_revision() -> str | None:
    """The suite's git commit, or None outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (inputs named in provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(expected: Iterable[tuple[str | Path, str]], source: str | Path) -> int:
    """Check files against the sha256 recorded for them in ``source``; returns how many were read.

    ``expected`` holds (path, sha256) pairs; each distinct file is hashed once. A missing
    or changed file is refused by name: a set whose images changed after it was built
    would otherwise be run with wrong stimuli and exit 0.
    """
    from suite.errors import InputError

    seen: dict[Path, str] = {}
    for path, sha in expected:
        path = Path(path)
        sha = (sha or "").strip().lower()
        if path in seen:
            if seen[path] != sha:
                raise InputError(f"{source}: {path} is listed with two different sha256 values")
            continue
        seen[path] = sha
        if not sha:
            raise InputError(f"{source}: no sha256 recorded for {path}; rebuild it with this suite")
        if not path.is_file():
            raise InputError(f"{path}: not found (named in {source}); "
                             "restore it or rebuild the set")
        if file_sha256(path) != sha:
            raise InputError(f"{path}: changed since {source} was written (sha256 differs); "
                             "restore the original file or rebuild the set")
    return len(seen)


def utc_now() -> str:
    """Current UTC time as ISO-8601 with milliseconds and a trailing Z."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def provenance(**parameters) -> dict:
    """A provenance record: parameters given, versions, command line, time, revision, host."""
    return {
        "created_utc": utc_now(),
        "command": sys.argv,
        "git_revision": git_revision(),
        "host": platform.node(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "parameters": parameters,
    }
