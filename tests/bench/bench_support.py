"""What the benchmarks' smoke tests share: running a script of ``bench/`` as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``bench/<script>`` run with this Python from the repository's root, its output as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
