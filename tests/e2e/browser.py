"""Headless Chromium for page tests: Debian's /usr/bin/chromium driven by Playwright, never a download.

Screenshots go to tests/artifacts/<test>/ (git-ignored) so a failing run leaves them to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@contextmanager
def chromium() -> Iterator[Browser]:
    """A running headless Chromium; fails with how to install it when the package is missing."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: `apt-get install chromium` (tests/run.sh does it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    """Numbered screenshots of one test, kept as artifacts."""

    def __init__(self, test_name: str) -> None:
        self.folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def take(self, page: Page, label: str) -> Path:
        """Save a full-page PNG named after ``label``."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
