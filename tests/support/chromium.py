"""Debian's Chromium as the browser tests and benchmarks drive it (never a downloaded one).

The flags keep a headless Chromium from reaching out to the network this machine does not
have (background networking, component updates, sync) and let it run as root.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def launch(playwright):
    """A headless Debian Chromium from a Playwright (sync) instance."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} missing: install Debian's chromium "
                                "(.ci/run does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
