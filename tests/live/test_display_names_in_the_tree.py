"""Display names over real TLS in a main + child tree: people are shown as they named themselves.

A guest who typed "Alice" on the event page holds a credential with username
``guest-…`` and display name "Alice"; a participant on the other server of the
tree sees "Alice" in the roster and as the chat sender, while the username stays
the name every command uses. A child link that sends a display name the wire
refuses loses its link with the reason, and the main server's own participants
go on.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tests.live.live_support import LINK_SECRETS, Center
from tests.live.server_support import Pki, connect, eventually, joined, running, sealed
from townhall.live import Floor, ServerRole, link_ticket
from townhall.live.floor import Seat
from townhall.live.server import LiveServer
from townhall.ticket import Credential
from townhall.ticket import Role as TicketRole
from townhall.wire import AuthOk, ByeReason, GiveFloor, Member, MemberJoined, Role, RosterUpdate
from townhall.wire.frames import pack_frame
from townhall.wire.messages import address_of

GUEST = "guest-k3j9x2ab"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def guest(issuer: Center, username: str, typed: str) -> Credential:
    """A guest's credential as the Center makes it: a generated username, the typed name."""
    credential = Credential.new(username=username, display_name=typed, role=TicketRole.PARTICIPANT)
    issuer.credentials[credential.credential_id] = credential
    return credential


async def linked_tree(main: LiveServer, child: LiveServer, issuer: Center) -> None:
    key = issuer.signing_key.public_key()
    main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
    child.assign(
        issuer.assignment(
            ServerRole.CHILD, parent=f"127.0.0.1:{main.port}", link_secret=LINK_SECRETS["child-a"]
        ),
        key,
    )
    await eventually(lambda: child.status()[0].upstream == "up", "the child linked Up")


async def test_a_guest_named_alice_on_the_child_is_shown_as_alice_on_the_main(
    pki: Pki, issuer: Center
) -> None:
    guest(issuer, GUEST, "Alice")
    guest(issuer, "guest-zz8q1mmn", "\u202eecilA <b>x</b>")  # a bidi override, and HTML
    async with running(pki, "main") as main, running(pki, "child-a") as child:
        await linked_tree(main, child, issuer)
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        alice = await joined(child.port, context, "alice", sealed(issuer, GUEST))
        odd = await joined(child.port, context, "odd", sealed(issuer, "guest-zz8q1mmn"))

        # Alice is told the name she is shown by; her identity is the username.
        assert isinstance(alice.auth, AuthOk)
        assert (alice.auth.name, alice.auth.display_name) == (GUEST, "Alice")

        await ana.wait_for(lambda: {GUEST, "guest-zz8q1mmn"} <= set(ana.roster), "the guests")
        assert ana.roster[GUEST].display_name == "Alice"
        assert ana.roster[GUEST].shown == "Alice"
        # The override is dropped (it would show the name reversed); the HTML is only text.
        assert ana.roster["guest-zz8q1mmn"].display_name == "ecilA <b>x</b>"
        assert ana.roster["ana"].display_name == "Ana"
        await alice.wait_for(lambda: "ana" in alice.roster, "ana in the child's roster")
        assert alice.roster["ana"].display_name == "Ana"

        alice.chat("hello from the child")
        await ana.wait_for(lambda: bool(ana.chats), "alice's message")
        (posted,) = ana.chats
        assert (posted.sender, posted.sender_display_name) == (GUEST, "Alice")
        assert posted.shown_sender == "Alice"
        ana.chat("welcome, Alice")
        await alice.wait_for(lambda: len(alice.chats) == 2, "both messages on the child")
        assert [(c.sender_display_name, c.text) for c in alice.chats] == [
            ("Alice", "hello from the child"),
            ("Ana", "welcome, Alice"),
        ]

        # Commands name members by their username, whatever they are shown as.
        ana.send(GiveFloor(name=GUEST))
        await ana.wait_for(lambda: ana.roster[GUEST].floor, "alice holds the floor")
        assert ana.roster[GUEST].display_name == "Alice"  # and is still shown so
        odd.leave()
        await ana.wait_for(lambda: "guest-zz8q1mmn" not in ana.roster, "the odd guest left")


async def test_a_child_sending_a_display_name_too_long_loses_its_link_and_nothing_else(
    pki: Pki, issuer: Center
) -> None:
    async with running(pki, "main") as main:
        main.assign(
            issuer.assignment(ServerRole.MAIN, children=("child-a",)),
            issuer.signing_key.public_key(),
        )
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        bo = await joined(main.port, context, "bo", sealed(issuer, "bo"))
        link = await connect(
            main.port,
            context,
            "rogue child",
            link_ticket("child-a", LINK_SECRETS["child-a"]),
            role=Role.SERVER_LINK,
        )
        await link.wait_for(lambda: link.joined, "the link open")
        channel, type_ = address_of(MemberJoined)
        bad = MemberJoined(
            name="mallory",
            credential_id="cred-mallory",
            role="participant",
            server="child-a",
            joined_at=1.0,
        )
        # Our own encoder refuses it, so the bytes are written as a broken peer would.
        fields = [*msgspec.structs.astuple(bad)[:-1], "M" * 201]
        link.send_raw(pack_frame(channel, type_, msgspec.msgpack.encode(fields)))
        await link.closed_by_server()
        assert link.closed is not None and link.closed.reason is ByeReason.PROTOCOL_ERROR
        assert "MemberJoined.display_name" in link.closed.message

        assert "mallory" not in ana.roster
        ana.chat("still here")
        await bo.wait_for(lambda: bool(bo.chats), "ana's message")
        assert [(c.shown_sender, c.text) for c in bo.chats] == [("Ana", "still here")]


def test_the_floor_shows_a_new_display_name_when_a_member_joins_again_with_one() -> None:
    floor = Floor(event="ev-1", title="All hands")
    first = floor.join(Seat("bo", "cred-bo-0001", TicketRole.PARTICIPANT, "main", 1.0, False, "Bo"))
    assert first == [RosterUpdate(changed=(Member(name="bo", display_name="Bo"),))]
    same = floor.join(
        Seat("bo", "cred-bo-0001", TicketRole.PARTICIPANT, "child-a", 2.0, False, "Bo")
    )
    assert same == []  # moved servers, shown the same: nothing to tell
    renamed = Seat("bo", "cred-bo-0002", TicketRole.PARTICIPANT, "main", 3.0, False, "Bo Builder")
    assert floor.join(renamed) == [
        RosterUpdate(changed=(Member(name="bo", display_name="Bo Builder"),))
    ]
