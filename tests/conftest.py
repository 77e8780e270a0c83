"""Fixtures several test files share, and the ``gpu`` marker's rule.

The shared data (``../shared/data`` beside the repository) is reached through
``shared_data``, ``imagenet_sample`` and ``mvh_raw``: without it, a test asking for one
fails naming the missing folder (tests/support/data.py). Helpers live in tests/support/;
no test file imports another.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.data import IMAGENET_SAMPLE, MVH_RAW, SHARED_DATA, require


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (read only)."""
    return require(SHARED_DATA)


@pytest.fixture(scope="session")
def imagenet_sample() -> Path:
    """The 80 real ImageNet photos (40 animal, 40 non-animal) with their manifest.csv."""
    return require(IMAGENET_SAMPLE)


@pytest.fixture(scope="session")
def mvh_raw() -> Path:
    """model-vs-human's raw human trials: one folder per experiment, 16 CSV files."""
    return require(MVH_RAW)


@pytest.fixture(scope="session")
def lite0():
    """The zoo's efficientnet_lite0_imagenet on the CPU, built once per run (eval mode)."""
    from models.zoo import create

    return create("efficientnet_lite0_imagenet")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``gpu`` is skipped, saying why, where torch sees no CUDA device."""
    if item.get_closest_marker("gpu") is None:
        return
    import torch

    if not torch.cuda.is_available():
        pytest.skip("gpu: needs a CUDA device; torch.cuda.is_available() is False here")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (tests/support/chromium.py), one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.support.chromium import CHROMIUM, launch

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
