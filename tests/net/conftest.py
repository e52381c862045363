"""One deployment on namespaces for the whole module: topology, then processes, then tests.

Building the networks and starting seven processes takes a few seconds, so
the tests of tests/net share one, each scheduling its own event. Skipped,
with the reason, where namespaces cannot be made (not root, no ip or nft).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net.deployment import Deployment, deployed
from tests.net.topology import Topology, skip_reason
from tests.proxy.proxy_support import BINARIES


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    reason = skip_reason()
    if reason is None and not Path(BINARIES["nginx"]).exists():
        reason = (
            "the DMZ's reverse proxy is Debian's nginx-light (scripts/setup --test installs it)"
        )
    if reason is not None:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="townhall-net-"))
    topology = Topology.create()
    try:
        with deployed(topology, work) as running:
            yield running
    finally:
        topology.delete()
        shutil.rmtree(work, ignore_errors=True)
