"""Fixtures for the live server's tests: ``issuer`` (a stand-in Center issuing tickets) and ``world``."""

from __future__ import annotations

import pytest

from tests.live.live_support import Center, World, tree
from townhall.ticket import Role as TicketRole


@pytest.fixture
def issuer() -> Center:
    issuer = Center()
    issuer.credential("ana", TicketRole.MODERATOR)
    issuer.credential("bo")
    issuer.credential("cy")
    issuer.credential("di")
    issuer.credential("pat", TicketRole.PRESENTER)
    return issuer


@pytest.fixture
def world(issuer: Center) -> World:
    net, main, a, b = tree(issuer)
    return World(
        net,
        main,
        a,
        b,
        ana=net.participant(main, "ana"),
        bo=net.participant(a, "bo"),
        cy=net.participant(b, "cy"),
        di=net.participant(b, "di"),
    )
