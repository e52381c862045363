"""Fixtures for the browser tests: Playwright, fresh Chromium contexts, tone files, a page server.

Every test here drives Debian's real Chromium; the whole folder skips only when Chromium or
``certutil`` is missing. Helpers without fixtures are in ``browser_support.py``.

- ``open_browser(audio_file=None, ca_files=(), extra_args=())`` -> a new ``BrowserContext``
  (own profile and ``$HOME``; its NSS db trusts ``ca_files``), closed after the test.
- ``tone_file(frequency, seconds=10.0, **options)`` -> the path of a 48 kHz mono WAV.
- ``static_server`` -> a running ``StaticServer``; ``static_server.url + "/static/media/..."``
  and ``"/pages/..."`` serve the browser participant's files and the test pages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from tests.browser.browser_support import (
    StaticServer,
    launch_chromium,
    missing_tools,
    write_tone_wav,
)

OpenBrowser = Callable[..., BrowserContext]
ToneFile = Callable[..., Path]


# Module scope, not session: Playwright's sync API keeps its event loop marked as running on this
# thread until it stops, and every asyncio test collected after this folder would then fail with
# "Runner.run() cannot be called from a running event loop". ("package" would act as session
# here: the tests folders are not Python packages.)
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    missing = missing_tools()
    if missing:
        pytest.skip("browser tests need " + ", ".join(missing))
    with sync_playwright() as running:
        yield running


@pytest.fixture
def open_browser(playwright: Playwright, tmp_path: Path) -> Iterator[OpenBrowser]:
    contexts: list[BrowserContext] = []
    numbers = itertools.count(1)

    def open_one(
        audio_file: Path | None = None,
        ca_files: Iterable[Path] = (),
        extra_args: Sequence[str] = (),
    ) -> BrowserContext:
        workdir = tmp_path / f"chromium-{next(numbers)}"
        context = launch_chromium(
            playwright, workdir, audio_file=audio_file, ca_files=ca_files, extra_args=extra_args
        )
        contexts.append(context)
        return context

    yield open_one
    for context in contexts:
        context.close()


@pytest.fixture
def tone_file(tmp_path: Path) -> ToneFile:
    def write(frequency: float, seconds: float = 10.0, **options: float) -> Path:
        return write_tone_wav(tmp_path / f"tone-{frequency:g}.wav", frequency, seconds, **options)

    return write


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[StaticServer]:
    with StaticServer.for_browser_files(tmp_path / "www") as server:
        yield server
