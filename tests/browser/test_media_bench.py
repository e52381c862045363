"""Smoke test of bench/browser.py in page mode: markers sent are found again where played.

A few seconds of the media path in one Chromium page (no server): the benchmark must find
the once-a-second burst at the mouth and at the ear and pair them, and say that the network
is not included. No figure is checked against a target (the machine's load decides those).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.browser.browser_support import REPO, missing_tools


def test_the_browser_bench_pairs_markers_from_capture_to_playout() -> None:
    if missing_tools():
        pytest.skip("needs " + ", ".join(missing_tools()))
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "browser.py"),
            "--mode=page",
            "--seconds=3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert "network path is NOT included" in result["note"]
    assert result["latency_ms"]["count"] >= 2
    # A pairing that went wrong would give nonsense: negative, or a whole marker period.
    assert 0 < result["latency_ms"]["min"] <= result["latency_ms"]["max"] < 900
    assert result["errors"] == []
