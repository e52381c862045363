"""Fixtures for the participant's tests: a development CA and an ``Issuer`` for one event."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.client_support import Issuer
from townhall.pki import DevCA


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(DevCA.ensure(tmp_path / "pki"))
