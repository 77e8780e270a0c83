"""Where the shared test data lie, written once: ``../shared/data`` beside the repository.

The tests read real ImageNet photos (``imagenet-sample``) and real human trials
(``model-vs-human-raw``) from there; nothing writes in it. Without the folder, a test that
needs it fails with one message saying what is missing and where it belongs — it is never
skipped. Tests reach the folders through the fixtures of ``tests/conftest.py``; helpers and
module-level tables call :func:`require` themselves.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
IMAGENET_SAMPLE = SHARED_DATA / "imagenet-sample"
MVH_RAW = SHARED_DATA / "model-vs-human-raw"


def missing_message(path: Path) -> str:
    """One line naming the missing data and where the tests look for it."""
    return (f"shared test data missing: {path} does not exist; the tests read "
            f"imagenet-sample/ and model-vs-human-raw/ from {SHARED_DATA} "
            f"(the folder shared/data beside the repository) — put them there")


def require(path: Path = SHARED_DATA) -> Path:
    """``path`` when it exists; otherwise fail the running test with :func:`missing_message`."""
    if not path.exists():
        import pytest  # only the tests get here; the benchmarks use the paths alone

        pytest.fail(missing_message(path), pytrace=False)
    return path


def files_under(folder: Path, pattern: str) -> list[Path]:
    """The files under ``folder`` matching ``pattern``, sorted, for ``@pytest.mark.parametrize``.

    Without the folder the list is ``[folder]``: one case whose fixture then fails naming it,
    where an empty list would have the test silently skipped.
    """
    return sorted(folder.rglob(pattern)) if folder.exists() else [folder]
