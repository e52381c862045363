"""``LiveServer`` over real TLS on 127.0.0.1: joining, chat, a main + child tree, events, tickets."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest

from tests.live.live_support import EVENT_ID, LINK_SECRETS, Center, sha256_hex
from tests.live.server_support import (
    Pki,
    connect,
    credential_id,
    eventually,
    join,
    joined,
    running,
    sealed,
)
from townhall.live import ServerRole, link_ticket
from townhall.live.routing import Arrived, Failed, Opening, Waiting
from townhall.live.server import EventStatus, LiveServer, split_address
from townhall.wire import (
    Auth,
    AuthFailed,
    AuthFailure,
    Bye,
    ByeReason,
    Codec,
    Connection,
    Hello,
    Load,
    Ping,
    Pong,
    Role,
    SetSpeakingMode,
    Side,
    SpeakingMode,
    State,
    TakeFloor,
    Welcome,
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def assign_main(server: LiveServer, issuer: Center, **options: object) -> None:
    server.assign(
        issuer.assignment(ServerRole.MAIN, **options),  # type: ignore[arg-type]
        issuer.signing_key.public_key(),
    )


async def test_a_participant_probes_the_load_joins_and_chats(pki: Pki, issuer: Center) -> None:
    async with running(pki, "main", capacity=50) as main:
        assign_main(main, issuer)
        context = pki.client_ssl()
        # Server selection: Hello, Ping, and the Pong carries the load, before any Auth.
        ana = await connect(main.port, context, "ana", sealed(issuer, "ana"), auto_auth=False)
        await ana.wait_for(lambda: ana.welcome is not None, "Welcome")
        assert ana.welcome is not None and ana.welcome.server == "main"
        ana.send(Ping(nonce=7))
        await ana.wait_for(lambda: bool(ana.pongs), "a Pong")
        assert ana.pongs == [Pong(nonce=7, load=Load(participants=0, capacity=50))]
        ana.authenticate()
        await ana.wait_for(lambda: ana.auth is not None, "AuthOk")
        assert ana.joined and ana.name == "ana"
        assert ana.auth is not None and getattr(ana.auth, "moderator", False)

        bo = await joined(main.port, context, "bo", sealed(issuer, "bo"))
        assert main.load() == (2, 50)
        (status,) = main.status()
        # The two are in the server's attendance, still here.
        assert [(v.name, v.left_at) for v in status.attendance] == [("ana", None), ("bo", None)]
        assert replace(status, attendance=()) == EventStatus(EVENT_ID, "main", "none", 2, ())

        ana.chat("hello everyone")
        bo.chat("hi ana")
        expected = [("ana", "hello everyone"), ("bo", "hi ana")]
        for client in (ana, bo):
            await client.wait_for(lambda c=client: len(c.chats) == 2, "both messages")  # type: ignore[misc]
            assert client.public_chat() == expected

        bo.leave()
        await bo.closed_by_server()
        await eventually(lambda: main.load() == (1, 50), "bo gone from the load")
        await ana.wait_for(lambda: "bo" not in ana.roster, "bo leaving the roster")


@pytest.mark.parametrize("alpn", [["h2"], []])
async def test_a_connection_without_alpn_townhall_is_refused(
    pki: Pki, issuer: Center, alpn: list[str]
) -> None:
    async with running(pki, "main") as main:
        assign_main(main, issuer)
        stranger = await connect(main.port, pki.client_ssl(alpn), "stranger", sealed(issuer, "bo"))
        await stranger.closed_by_server()
        assert stranger.raw == b"" and stranger.welcome is None


async def test_wire_frames_on_the_http_door_get_an_http_error(pki: Pki, issuer: Center) -> None:
    async with running(pki, "main") as main:
        assign_main(main, issuer)
        context = pki.client_ssl(["http/1.1"])
        stranger = await connect(main.port, context, "stranger", sealed(issuer, "bo"))
        await stranger.closed_by_server()
        assert bytes(stranger.raw).startswith(b"HTTP/1.1 400 ") and stranger.welcome is None


async def test_a_main_and_a_child_relay_chat_and_media_both_ways(pki: Pki, issuer: Center) -> None:
    changes: list[list[EventStatus]] = []
    async with (
        running(pki, "main") as main,
        running(pki, "child-a", on_status_change=lambda: changes.append(child.status())) as child,
    ):
        key = issuer.signing_key.public_key()
        main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
        child.assign(
            issuer.assignment(
                ServerRole.CHILD,
                parent=f"127.0.0.1:{main.port}",
                link_secret=LINK_SECRETS["child-a"],
            ),
            key,
        )
        await eventually(lambda: child.status()[0].upstream == "up", "the child linked Up")
        await eventually(lambda: main.status()[0].children == ("child-a",), "main sees child-a")
        assert [s.upstream for s in changes[-1]] == ["up"]  # the callback saw it happen

        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        bo = await joined(child.port, context, "bo", sealed(issuer, "bo"))
        for client in (ana, bo):
            await client.wait_for(lambda c=client: set(c.roster) == {"ana", "bo"}, "both")  # type: ignore[misc]
        (status,) = child.status()
        # Each server counts its own participants: bo on the child, ana on the main.
        assert [v.name for v in status.attendance] == ["bo"]
        assert [v.name for v in main.status()[0].attendance] == ["ana"]
        assert replace(status, attendance=()) == EventStatus(EVENT_ID, "child", "up", 1, ())

        ana.chat("down the tree")
        bo.chat("up the tree")
        ana.chat("and down again")
        for client in (ana, bo):
            await client.wait_for(lambda c=client: len(c.chats) == 3, "three messages")  # type: ignore[misc]
        assert ana.public_chat() == bo.public_chat()  # one order for everybody
        assert sorted(ana.public_chat()) == sorted(
            [("ana", "down the tree"), ("bo", "up the tree"), ("ana", "and down again")]
        )

        # Media Down: the moderator takes the floor and speaks.
        ana.send(TakeFloor())
        ana.open_stream()
        await ana.wait_for(lambda: ana.my_stream() is not None, "ana's stream")
        stream = ana.my_stream()
        assert stream is not None
        await bo.wait_for(lambda: stream in bo.streams, "ana's stream on the child")
        ana.speak(20)
        await bo.wait_for(lambda: len(bo.media_from(stream)) == 20, "20 frames from ana")
        assert bo.media_from(stream) == list(range(20))

        # Media Up: in open mode anyone speaks.
        ana.send(SetSpeakingMode(mode=SpeakingMode.OPEN))
        bo.open_stream(Codec.OPUS)
        await bo.wait_for(lambda: bo.my_stream() is not None, "bo's stream")
        bo_stream = bo.my_stream()
        assert bo_stream is not None
        await ana.wait_for(lambda: bo_stream in ana.streams, "bo's stream on main")
        bo.speak(15)
        await ana.wait_for(lambda: len(ana.media_from(bo_stream)) == 15, "15 frames from bo")
        assert ana.media_from(bo_stream) == list(range(15))
        assert bo.media_from(bo_stream) == []  # never back to its sender


async def test_one_server_holds_several_events_and_routes_each_ticket_to_its_own(
    pki: Pki, issuer: Center
) -> None:
    other = Center(signing_key=issuer.signing_key)
    other.credential("zed")
    async with running(pki, "main") as main:
        assign_main(main, issuer)
        main.assign(
            dataclasses.replace(other.assignment(ServerRole.MAIN), event_id=43, title="Other"),
            issuer.signing_key.public_key(),
        )
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        zed = await joined(main.port, context, "zed", sealed(other, "zed", event_id=43))
        assert zed.auth is not None and getattr(zed.auth, "event", None) == "43"
        assert sorted((s.event_id, s.participants) for s in main.status()) == [(42, 1), (43, 1)]
        assert main.load() == (2, 0)

        nobody = await join(main.port, context, "nobody", sealed(issuer, "bo", event_id=44))
        assert isinstance(nobody.auth, AuthFailed)
        assert nobody.auth.reason is AuthFailure.EVENT_NOT_LIVE
        await nobody.closed_by_server()

        zed.chat("only for 43")
        ana.chat("only for 42")
        await zed.wait_for(lambda: len(zed.chats) == 1, "zed's own chat")
        await ana.wait_for(lambda: len(ana.chats) == 1, "ana's own chat")
        assert zed.public_chat() == [("zed", "only for 43")]
        assert ana.public_chat() == [("ana", "only for 42")]
        assert set(ana.roster) == {"ana"} and set(zed.roster) == {"zed"}

        main.end(43)
        await zed.closed_by_server()
        assert zed.closed is not None and zed.closed.reason is ByeReason.EVENT_ENDED
        assert [s.event_id for s in main.status()] == [42]
        late = await join(main.port, context, "zed-again", sealed(other, "zed", event_id=43))
        assert isinstance(late.auth, AuthFailed)
        assert late.auth.reason is AuthFailure.EVENT_NOT_LIVE
        ana.chat("still here")
        await ana.wait_for(lambda: len(ana.chats) == 2, "ana's second message")


async def test_bad_tickets_are_refused_with_their_reason(pki: Pki, issuer: Center) -> None:
    async with running(pki, "main") as main:
        assign_main(main, issuer, children=("child-a",))
        context = pki.client_ssl()
        di = await joined(main.port, context, "di", sealed(issuer, "di"))
        main.assign(
            issuer.assignment(
                ServerRole.MAIN,
                children=("child-a",),
                revoked=frozenset({credential_id(issuer, "cy"), credential_id(issuer, "di")}),
            ),
            issuer.signing_key.public_key(),
        )
        await di.closed_by_server()  # revoked while connected
        assert di.closed is not None and di.closed.reason is ByeReason.REMOVED

        good = sealed(issuer, "bo")
        tampered = bytearray(good)
        tampered[len(good) // 2] ^= 0x01
        cases: list[tuple[str, bytes, Role, AuthFailure]] = [
            ("tampered", bytes(tampered), Role.PARTICIPANT, AuthFailure.BAD_TICKET),
            ("garbage", b"not a ticket at all", Role.PARTICIPANT, AuthFailure.BAD_TICKET),
            (
                "another event",
                sealed(issuer, "bo", event_id=EVENT_ID + 1),
                Role.PARTICIPANT,
                AuthFailure.EVENT_NOT_LIVE,
            ),
            (
                "expired",
                sealed(issuer, "bo", now=1_700_000_000, lifetime=600),
                Role.PARTICIPANT,
                AuthFailure.EXPIRED,
            ),
            ("revoked", sealed(issuer, "cy"), Role.PARTICIPANT, AuthFailure.NOT_ALLOWED),
            ("sealed on a server link", good, Role.SERVER_LINK, AuthFailure.NOT_ALLOWED),
            (
                "link ticket as participant",
                link_ticket("child-a", LINK_SECRETS["child-a"]),
                Role.PARTICIPANT,
                AuthFailure.BAD_TICKET,
            ),
            (
                "wrong link secret",
                link_ticket("child-a", "x" * 24),
                Role.SERVER_LINK,
                AuthFailure.NOT_ALLOWED,
            ),
            (
                "unknown child",
                link_ticket("child-b", LINK_SECRETS["child-b"]),
                Role.SERVER_LINK,
                AuthFailure.EVENT_NOT_LIVE,
            ),
            ("controller link", good, Role.CONTROLLER_LINK, AuthFailure.NOT_ALLOWED),
        ]
        clients = [
            await connect(main.port, context, label, ticket, role=role)
            for label, ticket, role, _ in cases
        ]
        for client, (label, _, _, reason) in zip(clients, cases, strict=True):
            await client.wait_for(lambda c=client: c.auth is not None, "an AuthFailed")  # type: ignore[misc]
            assert isinstance(client.auth, AuthFailed), label
            assert client.auth.reason is reason, (label, client.auth)
            await client.closed_by_server()

        bo = await joined(main.port, context, "bo", good)  # the good one still works
        assert bo.name == "bo"
        assert main.status()[0].participants == 1


async def test_a_full_server_says_so_before_the_room_is_asked(pki: Pki, issuer: Center) -> None:
    async with running(pki, "main", capacity=1) as main:
        assign_main(main, issuer)
        context = pki.client_ssl()
        await joined(main.port, context, "ana", sealed(issuer, "ana"))
        bo = await join(main.port, context, "bo", sealed(issuer, "bo"))
        assert isinstance(bo.auth, AuthFailed) and bo.auth.reason is AuthFailure.SERVER_FULL


def test_addresses_are_host_and_port() -> None:
    assert split_address("127.0.0.1:9443") == ("127.0.0.1", 9443)
    assert split_address("[::1]:9443") == ("::1", 9443)
    assert split_address("main.example:1") == ("main.example", 1)
    for bad in ("main.example", ":9443", "host:0", "host:70000", "host:x"):
        with pytest.raises(ValueError):
            split_address(bad)


def test_unknown_room_defaults_are_refused_at_once(pki: Pki) -> None:
    with pytest.raises(TypeError):
        LiveServer(
            name="main",
            host="127.0.0.1",
            port=0,
            server_ssl=pki.server_ssl("main"),
            upstream_ssl=pki.upstream_ssl("main"),
            room_defaults={"no_such_bound": 1},
        )


async def test_a_child_in_two_events_links_once_per_event_to_the_right_room(
    pki: Pki, issuer: Center
) -> None:
    key = issuer.signing_key.public_key()
    other = Center(signing_key=issuer.signing_key)
    other.credential("zed")
    secret_43 = "s" * 32
    async with running(pki, "main") as main, running(pki, "child-a") as child:
        parent = f"127.0.0.1:{main.port}"
        main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
        main.assign(
            dataclasses.replace(
                other.assignment(ServerRole.MAIN),
                event_id=43,
                children={"child-a": sha256_hex(secret_43)},
            ),
            key,
        )
        child.assign(
            issuer.assignment(ServerRole.CHILD, parent=parent, link_secret=LINK_SECRETS["child-a"]),
            key,
        )
        child.assign(
            dataclasses.replace(
                other.assignment(ServerRole.CHILD, parent=parent, link_secret=secret_43),
                event_id=43,
            ),
            key,
        )
        await eventually(
            lambda: [s.upstream for s in child.status()] == ["up", "up"], "both links Up"
        )
        assert [s.children for s in main.status()] == [("child-a",), ("child-a",)]

        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        zed = await joined(child.port, context, "zed", sealed(other, "zed", event_id=43))
        zed.chat("43 through the child")
        await zed.wait_for(lambda: len(zed.chats) == 1, "zed's echo from the main server")
        assert sorted((s.event_id, s.participants) for s in main.status()) == [(42, 1), (43, 0)]
        assert ana.chats == []


def test_the_opening_answers_until_auth_and_hands_over_its_connection() -> None:
    client = Connection(Side.CLIENT, now=0.0)
    opening = Opening(server_name="main", now=0.0)
    hello = client.send(Hello(role=Role.PARTICIPANT, version=1, client="t/1"))
    step = opening.receive(hello[:5], 0.0, Load(participants=3, capacity=9))
    assert step == Waiting(b"")  # half a header: nothing yet
    step = opening.receive(hello[5:], 0.0, Load(participants=3, capacity=9))
    assert isinstance(step, Waiting) and step.out
    client.receive_data(step.out, 0.0)
    assert isinstance(client.next_event(), Welcome)
    ping = client.send(Ping(nonce=1))
    auth = client.send(Auth(ticket=b"ticket"))
    after = client.send(Ping(nonce=2))
    step = opening.receive(ping + auth + after, 0.0, Load(participants=3, capacity=9))
    assert isinstance(step, Arrived)
    client.receive_data(step.out, 0.0)
    assert client.next_event() == Pong(nonce=1, load=Load(participants=3, capacity=9))
    assert step.rest == after  # not read: the room's, with the connection
    assert step.ticket == b"ticket" and step.hello.role is Role.PARTICIPANT
    assert step.connection.state is State.AWAIT_AUTH_RESULT
    step.connection.receive_data(step.rest, 0.0)
    assert step.connection.next_event() == Ping(nonce=2)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # no frame
        b"\x01\x02\x00\x00\x00\x00\x80\x00",  # 32 KiB of VIDEO before Hello
        b"\x01\x00\x07\x00\x00\x00\x00\x02\x91\x01",  # Ping before Hello
    ],
)
def test_the_opening_says_bye_to_what_is_not_a_handshake(data: bytes) -> None:
    step = Opening(server_name="main", now=0.0).receive(data, 0.0, Load(participants=0, capacity=0))
    assert isinstance(step, Failed)
    peer = Connection(Side.CLIENT, now=0.0)
    peer.send(Hello(role=Role.PARTICIPANT, version=1, client="t/1"))
    peer.receive_data(step.out, 0.0)
    bye = peer.next_event()
    assert isinstance(bye, Bye) and bye.reason is ByeReason.PROTOCOL_ERROR
