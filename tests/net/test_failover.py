"""Failover on separated networks: a child killed, the DMZ link cut, the main server and the
Center restarted, each with participants on the server that fails (issue 12, item 4).

One deployment serves the module (tests/net/deployment.py), its live servers on a short
keepalive (``[live] ping_seconds`` 1, ``idle_timeout_seconds`` 3, from the environment)
so that a link cut by the firewall, which sends no reset, is noticed in seconds. Each
test schedules its own event and leaves the deployment as it found it: every process
running, no cut in the firewall, the tree whole. Chat is checked line by line: every
participant has every line once, none missing, in the one order the main server gave.
Waits are bounded and generous; nothing asserts how long anything took
(bench/failover.py measures that).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.e2e_support import Watcher, ticket_for
from tests.net.deployment import (
    Deployment,
    cut,
    deployed,
    kill,
    mend,
    process_of,
    start_again,
)
from tests.net.topology import CENTER_PORT, CHILD_PORT, MAIN_PORT, HostLoop, Topology, skip_reason
from tests.proxy.proxy_support import BINARIES
from townhall.client.events import ConnectionLost, Joined, Left, MainReachChanged

KEEPALIVE = {"TOWNHALL_LIVE__PING_SECONDS": "1", "TOWNHALL_LIVE__IDLE_TIMEOUT_SECONDS": "3"}
WAIT = 60.0  # seconds: generous bounds for behaviour, never an assertion on time


@pytest.fixture(scope="module")
def failover() -> Iterator[Deployment]:
    reason = skip_reason()
    if reason is None and not Path(BINARIES["nginx"]).exists():
        reason = (
            "the DMZ's reverse proxy is Debian's nginx-light (scripts/setup --test installs it)"
        )
    if reason is not None:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="townhall-failover-"))
    topology = Topology.create()
    try:
        # The processes inherit this environment, those started again too.
        with pytest.MonkeyPatch.context() as patch:
            for key, value in KEEPALIVE.items():
                patch.setenv(key, value)
            with deployed(topology, work) as running:
                yield running
    finally:
        mend(topology)
        topology.delete()
        shutil.rmtree(work, ignore_errors=True)


class Person:
    """A participant on ``host`` and what it received."""

    def __init__(self, host: HostLoop, watcher: Watcher) -> None:
        self.host, self.watcher = host, watcher
        self.name = host.do(lambda: watcher.participant.name) or ""

    def events(self) -> list[object]:
        return self.host.do(lambda: list(self.watcher.events))

    def chat(self) -> list[tuple[str, str]]:
        return self.host.do(self.watcher.chat)

    def say(self, text: str) -> None:
        self.host.do(lambda: self.watcher.participant.say(text))

    def wait_for(self, check: Callable[[Watcher], object], what: str) -> None:
        self.host.run(
            self.watcher.wait_for(lambda: check(self.watcher), what, timeout=WAIT), WAIT + 10
        )

    def server(self) -> str | None:
        return self.host.do(lambda: self.watcher.participant.server)

    def joins(self) -> int:
        return sum(isinstance(e, Joined) for e in self.events())

    def left(self) -> Left | None:
        return self.host.do(self.watcher.left)


def join(
    deployment: Deployment, host: HostLoop, name: str, event_id: int, server: str | None = None
) -> Person:
    """``name`` in the event from ``host``: on ``server`` when given, else as selection picks."""
    if host is deployment.outside:
        ticket = deployment.ticket_through_proxy(name, event_id)
    else:
        ticket = deployment.staff.call(ticket_for, deployment.center, name, event_id)

    async def joined() -> Watcher:
        watcher = Watcher(ticket, server=server)
        await watcher.participant.join()
        return watcher

    return Person(host, host.run(joined()))


class Chat:
    """Lines said during a test, and the check that everyone has each once, in one order."""

    def __init__(self, people: list[Person]) -> None:
        self.people = people
        self.said: list[tuple[str, str]] = []

    def say(self, person: Person, text: str) -> None:
        person.say(text)
        self.said.append((person.name, text))

    def check(self) -> None:
        """Wait until everyone has every line said, then: each once, the same order for all."""
        expected = set(self.said)
        for person in self.people:
            person.wait_for(lambda w: expected <= set(w.chat()), f"every line of {self.said}")
        lists = {person.name: person.chat() for person in self.people}
        for name, lines in lists.items():
            assert len(lines) == len(set(lines)), f"{name} got a line twice: {lines}"
            assert set(lines) == expected, f"{name} has lines nobody said: {lines}"
        orders = {tuple(lines) for lines in lists.values()}
        assert len(orders) == 1, f"not one order: {lists}"


def tree_whole(deployment: Deployment, event_id: int) -> None:
    """Wait until every server of the event is connected and every child synced Up."""

    def whole(state: dict[str, object]) -> bool:
        servers = state.get("servers")
        return (
            state.get("state") == "ready"
            and isinstance(servers, list)
            and len(servers) == 3
            and all(s["connected"] for s in servers)
            and all(s["role"] == "main" or s["upstream"] == "up" for s in servers)
        )

    deployment.wait_live(event_id, whole, "the tree whole again", attempts=int(WAIT / 0.3))


def start_event(deployment: Deployment, title: str) -> int:
    """An event starting now, its whole tree formed and linked."""
    event_id = deployment.schedule_now(title)
    deployment.wait_ready(event_id)
    tree_whole(deployment, event_id)
    return event_id


def wait_all_see_each_other(people: list[Person]) -> None:
    for person in people:
        person.wait_for(lambda w: len(w.participant.roster) == len(people), "everyone")


def leave_all(people: list[Person]) -> None:
    for person in people:
        if person.left() is None:
            person.host.run(person.watcher.participant.leave())


def test_a_killed_childs_participants_rejoin_another_server_with_every_chat_line_once(
    failover: Deployment,
) -> None:
    event_id = start_event(failover, "Failover: child")
    staff = failover.staff
    olga = join(failover, staff, "olga", event_id, server="main")
    mike = join(failover, staff, "mike", event_id, server="child")
    otto = join(failover, staff, "otto", event_id, server="child")
    nina = join(failover, failover.outside, "nina", event_id)
    people = [olga, mike, otto, nina]
    chat = Chat(people)
    restart: list[str] | None = None
    try:
        wait_all_see_each_other(people)
        chat.say(mike, "from the child, before")
        chat.say(nina, "from outside, before")
        chat.check()

        restart = kill(process_of(failover, "live", "child"))
        chat.say(olga, "while the child is gone")
        for person in (mike, otto):
            person.wait_for(
                lambda w: any(isinstance(e, Joined) and e.rejoin for e in w.events),
                "a rejoin on another server",
            )
            assert person.server() in {"main", "dmz"}
            assert person.left() is None
        chat.say(otto, "back, from another server")
        chat.say(mike, "me too")
        chat.check()
        assert olga.joins() == 1 and nina.joins() == 1  # the others never noticed
    finally:
        leave_all(people)
        if restart is not None:
            start_again(failover, restart, "child", "child", CHILD_PORT)
        tree_whole(failover, event_id)


def test_a_cut_dmz_link_is_told_outside_and_the_event_goes_on_once_mended(
    failover: Deployment,
) -> None:
    event_id = start_event(failover, "Failover: DMZ link")
    staff, outside = failover.staff, failover.outside
    olga = join(failover, staff, "olga", event_id)
    nina = join(failover, outside, "nina", event_id)
    otto = join(failover, outside, "otto", event_id)
    people = [olga, nina, otto]
    chat = Chat(people)
    try:
        assert nina.server() == "dmz" and otto.server() == "dmz"
        wait_all_see_each_other(people)
        chat.say(nina, "hello from outside")
        chat.check()

        cut(failover.topology, "dmz", "main")
        for person in (nina, otto):
            person.wait_for(
                lambda w: any(
                    isinstance(e, MainReachChanged) and not e.reachable for e in w.events
                ),
                "word that the main server is out of reach",
            )
            assert not person.host.do(lambda p=person: p.watcher.participant.main_reachable)
        # Both sides go on talking: the main server numbers chat, so each side's line
        # waits behind the cut (the outside one on the DMZ server) and arrives once mended.
        chat.say(olga, "inside, during the cut")
        chat.say(otto, "outside, during the cut")

        mend(failover.topology)
        for person in (nina, otto):
            person.wait_for(
                lambda w: any(isinstance(e, MainReachChanged) and e.reachable for e in w.events),
                "word that the main server is back",
            )
        chat.say(olga, "inside, after")
        chat.say(nina, "outside, after")
        chat.check()
        for person in people:  # nobody lost the connection: the DMZ server reconnected
            assert person.joins() == 1, person.events()
            assert not any(isinstance(e, ConnectionLost) for e in person.events())
        tree_whole(failover, event_id)
    finally:
        mend(failover.topology)
        leave_all(people)


def test_a_restarted_main_server_gets_its_tree_back_and_everyone_rejoins(
    failover: Deployment,
) -> None:
    event_id = start_event(failover, "Failover: main")
    staff = failover.staff
    olga = join(failover, staff, "olga", event_id, server="main")
    mike = join(failover, staff, "mike", event_id, server="main")
    otto = join(failover, staff, "otto", event_id, server="child")
    nina = join(failover, failover.outside, "nina", event_id)
    people = [olga, mike, otto, nina]
    chat = Chat(people)
    restart: list[str] | None = None
    try:
        wait_all_see_each_other(people)
        chat.say(olga, "before the main server goes")
        chat.check()

        restart = kill(process_of(failover, "live", "main"))
        for person in (olga, mike):
            person.wait_for(
                lambda w: any(isinstance(e, ConnectionLost) for e in w.events), "the loss"
            )
        start_again(failover, restart, "main", "main", MAIN_PORT)
        restart = None
        tree_whole(failover, event_id)
        for person in people:
            person.wait_for(lambda w: len(w.participant.roster) == 4, "all four back")
            assert person.left() is None
        for person in (olga, mike):
            assert person.joins() == 2
        chat.say(mike, "after the restart")
        chat.say(nina, "heard from outside")
        chat.check()
    finally:
        leave_all(people)
        if restart is not None:
            start_again(failover, restart, "main", "main", MAIN_PORT)


def test_a_restarted_center_goes_unnoticed_by_the_live_event(failover: Deployment) -> None:
    event_id = start_event(failover, "Failover: Center")
    staff = failover.staff
    olga = join(failover, staff, "olga", event_id)
    mike = join(failover, staff, "mike", event_id, server="child")
    nina = join(failover, failover.outside, "nina", event_id)
    people = [olga, mike, nina]
    chat = Chat(people)
    restart: list[str] | None = None
    try:
        wait_all_see_each_other(people)
        restart = kill(process_of(failover, "center"))
        chat.say(mike, "while the Center is down")
        chat.say(nina, "still here")
        chat.check()
        start_again(failover, restart, "center", "center", CENTER_PORT)
        restart = None
        chat.say(olga, "the Center is back")
        chat.check()
        tree_whole(failover, event_id)  # the Center answers again, and reports the tree
        for person in people:
            assert person.joins() == 1, person.events()
            assert not any(isinstance(e, ConnectionLost) for e in person.events())
    finally:
        leave_all(people)
        if restart is not None:
            start_again(failover, restart, "center", "center", CENTER_PORT)


@pytest.fixture(autouse=True)
def _no_leftover_cut(failover: Deployment) -> Iterator[None]:
    yield
    mend(failover.topology)
