"""Property tests: whatever members do, in any order, nothing raises and the state holds together."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.live.live_support import Center, Client, tree
from townhall.live import Floor, Upstream
from townhall.live.floor import Seat
from townhall.ticket import Role as TicketRole
from townhall.wire import (
    AuthFailed,
    ChatPosted,
    Codec,
    GiveFloor,
    LowerHand,
    Message,
    Mute,
    OpenStream,
    RaiseHand,
    Refused,
    Remove,
    SetSpeakingMode,
    SpeakingMode,
    TakeFloor,
)
from townhall.wire.messages import CloseStream

NAMES = ["ana", "bo", "cy", "di", "pat"]
ROLES = {
    "ana": TicketRole.MODERATOR,
    "bo": TicketRole.PARTICIPANT,
    "cy": TicketRole.PARTICIPANT,
    "di": TicketRole.MODERATOR,
    "pat": TicketRole.PRESENTER,
}
names = st.sampled_from(NAMES)
commands: st.SearchStrategy[Message] = st.one_of(
    st.just(RaiseHand()),
    st.builds(LowerHand, name=st.none() | names),
    st.builds(GiveFloor, name=names),
    st.just(TakeFloor()),
    st.builds(Mute, name=names, muted=st.booleans()),
    st.builds(Remove, name=names),
    st.builds(SetSpeakingMode, mode=st.sampled_from(SpeakingMode)),
    st.builds(OpenStream, codec=st.sampled_from(Codec)),
    st.builds(CloseStream, stream_id=st.integers(0, 5)),
)


def check_floor(floor: Floor) -> None:
    seats = floor.seats
    assert floor.holder is None or floor.holder in seats
    assert len(set(floor.queue)) == len(floor.queue)
    assert set(floor.queue) <= set(seats)
    assert floor.holder not in floor.queue
    assert all(info.owner in seats for info in floor.streams.values())
    assert len({(i.owner, i.codec) for i in floor.streams.values()}) == len(floor.streams)
    if floor.mode is SpeakingMode.LECTURE:
        assert floor.queue == ()


class FloorMachine(RuleBasedStateMachine):
    """The Floor alone: many more steps than the whole tree can afford."""

    def __init__(self) -> None:
        super().__init__()
        self.floor = Floor(event="42", title="t")
        self.ids = itertools.count()

    @rule(name=names)
    def join(self, name: str) -> None:
        self.floor.join(Seat(name, f"credential{name}", ROLES[name], "main", 0.0))

    @rule(name=names)
    def leave(self, name: str) -> None:
        self.floor.leave(name)

    @rule(name=names, command=commands)
    def request(self, name: str, command: Message) -> None:
        before = name in self.floor.seats and self.floor.seats[name].role
        out = self.floor.request(name, command)
        if any(isinstance(item, Refused) for item in out):
            assert len(out) == 1 and before is not False

    @invariant()
    def holds_together(self) -> None:
        check_floor(self.floor)


FloorMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
test_the_floor_keeps_its_invariants = FloorMachine.TestCase


def is_subsequence(part: list[object], whole: list[object]) -> bool:
    it = iter(whole)
    return all(any(item == other for other in it) for item in part)


class TreeMachine(RuleBasedStateMachine):
    """Participants on a main server and two children do anything, links break and mend."""

    @initialize()
    def build(self) -> None:
        issuer = Center()
        for name in NAMES:
            issuer.credential(name, ROLES[name])
        self.net, self.main, a, b = tree(issuer)
        self.servers = [self.main, a, b]
        self.children = [a, b]
        self.clients: dict[str, Client] = {}
        self.every_client: list[Client] = []
        self.tickets: dict[str, bytes] = {}
        self.removed: set[str] = set()
        self.texts = itertools.count()
        for index, name in enumerate(NAMES):
            client = self.net.participant(self.servers[index % 3], name)
            self.clients[name] = client
            self.every_client.append(client)
            self.tickets[name] = client.ticket

    def open_clients(self) -> list[Client]:
        return [c for c in self.clients.values() if c.is_open]

    def client(self, name: str) -> Client | None:
        client = self.clients.get(name)
        return client if client is not None and client.is_open else None

    @rule(name=names, to=st.none() | names)
    def chat(self, name: str, to: str | None) -> None:
        client = self.client(name)
        if client is not None:
            client.chat(f"m{next(self.texts)}", to=to)

    @rule(name=names, command=commands)
    def command(self, name: str, command: Message) -> None:
        client = self.client(name)
        if client is not None:
            client.send(command)

    @rule(name=names)
    def speak(self, name: str) -> None:
        client = self.client(name)
        if client is not None and client.my_stream() is not None:
            client.speak()

    @rule(name=names)
    def leave(self, name: str) -> None:
        client = self.client(name)
        if client is not None:
            client.leave()

    @rule(name=names, server=st.integers(0, 2))
    def rejoin(self, name: str, server: int) -> None:
        client = self.net.join(
            self.servers[server], Client(f"{name}+", self.tickets[name], self.net.now)
        )
        self.clients[name] = client
        self.every_client.append(client)
        target = self.servers[server]
        if name in self.removed and target.room.upstream in (Upstream.NONE, Upstream.UP):
            assert isinstance(client.auth, AuthFailed)
        # (a child cut off from the main server learns of the removal when it is back)

    @rule(child=st.integers(0, 1))
    def cut(self, child: int) -> None:
        self.net.cut(self.children[child])

    @rule(child=st.integers(0, 1))
    def mend(self, child: int) -> None:
        self.net.mend(self.children[child])

    @rule(seconds=st.sampled_from([0.1, 1.0, 40.0]))
    def step(self, seconds: float) -> None:
        self.net.step(seconds)

    @rule()
    def pump(self) -> None:
        self.net.pump()
        floor = self.main.room.floor
        assert floor is not None
        self.removed |= {
            name for name in NAMES if floor.seats.get(name) is None and self._was_removed(name)
        }

    def _was_removed(self, name: str) -> bool:
        client = self.clients[name]
        return client.closed is not None and client.closed.reason.value == "removed"

    @invariant()
    def the_floor_holds_together(self) -> None:
        if hasattr(self, "main"):
            floor = self.main.room.floor
            assert floor is not None
            check_floor(floor)

    @invariant()
    def every_view_of_chat_follows_the_main_log(self) -> None:
        if not hasattr(self, "main"):
            return
        log = [e.posted for e in self.main.room.chat_log]
        assert [e.seq for e in self.main.room.chat_log] == list(range(1, len(log) + 1))
        for client in self.every_client:
            assert len({(c.sender, c.text) for c in client.chats}) == len(client.chats)
            assert is_subsequence(client.chats, log), client

    def teardown(self) -> None:
        if not hasattr(self, "main"):
            return
        # Settle: every link mended and back, every queue delivered.
        for child in self.children:
            self.net.mend(child)
        for _ in range(3):
            self.net.step(60)
        floor = self.main.room.floor
        assert floor is not None
        log: list[ChatPosted] = [e.posted for e in self.main.room.chat_log]
        public = [p for p in log if p.to is None]
        members = {name: floor.member(name) for name in floor.seats}
        for server in self.servers:
            assert dict(server.room.roster) == members, server.name
            assert server.room.outgoing_chat == 0
        for client in self.open_clients():
            assert client.roster == members
            seen = [c for c in client.chats if c.to is None]
            # prefix-consistent: a contiguous run of the main log, up to its end
            assert seen == public[len(public) - len(seen) :], client
        for name in NAMES:  # one live connection per credential
            assert sum(c.is_open for c in self.every_client if c.ticket == self.tickets[name]) <= 1
        for name in self.removed:
            assert name not in floor.seats
            assert not any(c.is_open for c in self.every_client if c.ticket == self.tickets[name])


TreeMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_actions_across_the_tree_keep_the_event_consistent = TreeMachine.TestCase
