"""What every output carries about how it was made: versions, command, time, code revision."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as _md
import platform
import subprocess
import sys
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
