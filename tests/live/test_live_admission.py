"""Who a live server lets in: tickets, credentials lists, server links, one connection each."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.live.live_support import EVENT_ID, LINK_SECRETS, Center, Client, Network, World
from townhall.live import ServerRole, link_ticket, member_name
from townhall.ticket import Credential
from townhall.ticket import Role as TicketRole
from townhall.wire import (
    AuthFailed,
    AuthFailure,
    AuthOk,
    ByeReason,
    ChatPosted,
    MemberJoined,
    Role,
    encode_message,
)

LIST_LAG = 30.0  # RoomSettings.list_lag, the default every test room uses


@pytest.fixture
def net(issuer: Center) -> Network:
    net = Network(issuer)
    main = net.add_server("main")
    net.assign(main, issuer.assignment(ServerRole.MAIN, children=("child-a",)))
    return net


def refused(client: Client) -> AuthFailure:
    assert isinstance(client.auth, AuthFailed), client.auth
    assert client.closed is not None
    return client.auth.reason


def connect(net: Network, ticket: bytes, role: Role = Role.PARTICIPANT) -> Client:
    return net.join(net.servers["main.test:9443"], Client("someone", ticket, net.now, role))


def credential_of(issuer: Center, username: str) -> Credential:
    return next(c for c in issuer.credentials.values() if c.username == username)


def test_a_good_ticket_opens_the_connection(net: Network, issuer: Center) -> None:
    client = connect(net, issuer.sealed(credential_of(issuer, "bo"), net.now))
    assert isinstance(client.auth, AuthOk) and client.auth.name == "bo"
    assert client.auth.event == str(EVENT_ID)


def test_a_ticket_signed_by_someone_else_is_refused(net: Network, issuer: Center) -> None:
    forger = Center(signing_key=Ed25519PrivateKey.generate(), event_key=issuer.event_key)
    ticket = forger.sealed(credential_of(issuer, "bo"), net.now)
    assert refused(connect(net, ticket)) is AuthFailure.BAD_TICKET


def test_a_ticket_for_another_event_is_refused(net: Network, issuer: Center) -> None:
    ticket = issuer.sealed(credential_of(issuer, "bo"), net.now, event_id=EVENT_ID + 1)
    assert refused(connect(net, ticket)) is AuthFailure.WRONG_EVENT


def test_an_expired_ticket_is_refused(net: Network, issuer: Center) -> None:
    ticket = issuer.sealed(credential_of(issuer, "bo"), net.now - 3600, lifetime=600)
    assert refused(connect(net, ticket)) is AuthFailure.EXPIRED


def test_garbage_is_refused(net: Network) -> None:
    assert refused(connect(net, b"not a ticket")) is AuthFailure.BAD_TICKET


def test_a_credential_not_on_the_list_is_refused(net: Network, issuer: Center) -> None:
    stranger = Credential.new(username="eve", display_name="Eve", role=TicketRole.MODERATOR)
    issued = net.now - LIST_LAG - 1  # the Controller's list was read after this
    client = connect(net, issuer.sealed(stranger, issued))
    assert refused(client) is AuthFailure.BAD_TICKET


def test_a_credential_issued_after_the_list_was_read_is_let_in_until_revoked(
    net: Network, issuer: Center
) -> None:
    fresh = issuer.credential("fresh")
    client = connect(net, issuer.sealed(fresh, net.now))
    assert isinstance(client.auth, AuthOk)
    revoked = frozenset({fresh.credential_id})
    net.assign(net.servers["main.test:9443"], issuer.assignment(ServerRole.MAIN, revoked=revoked))
    assert client.closed is not None and client.closed.reason is ByeReason.REMOVED


def test_a_revoked_credential_is_refused_and_one_in_use_is_closed(
    net: Network, issuer: Center
) -> None:
    main = net.servers["main.test:9443"]
    bo = connect(net, issuer.sealed(credential_of(issuer, "bo"), net.now))
    cy_credential = credential_of(issuer, "cy")
    cy_ticket = issuer.sealed(cy_credential, net.now)
    revoked = frozenset({credential_of(issuer, "bo").credential_id, cy_credential.credential_id})
    net.assign(main, issuer.assignment(ServerRole.MAIN, children=("child-a",), revoked=revoked))
    assert bo.closed is not None and bo.closed.reason is ByeReason.REMOVED
    assert refused(connect(net, cy_ticket)) is AuthFailure.NOT_ALLOWED
    assert main.room.floor is not None and "bo" not in main.room.floor.seats


def test_a_late_registration_is_let_in_after_the_update(net: Network, issuer: Center) -> None:
    late = issuer.credential("late")
    ticket = issuer.sealed(late, net.now - LIST_LAG - 1)
    assert refused(connect(net, ticket)) is AuthFailure.BAD_TICKET
    net.assign(net.servers["main.test:9443"], issuer.assignment(ServerRole.MAIN))
    assert isinstance(connect(net, ticket).auth, AuthOk)


def test_a_server_without_its_assignment_says_the_event_is_not_live(issuer: Center) -> None:
    net = Network(issuer)
    lonely = net.add_server("lonely")
    client = net.join(
        lonely, Client("bo", issuer.sealed(credential_of(issuer, "bo"), net.now), net.now)
    )
    assert refused(client) is AuthFailure.EVENT_NOT_LIVE


def test_a_participant_ticket_presented_on_a_server_link_is_refused(
    net: Network, issuer: Center
) -> None:
    ticket = issuer.sealed(credential_of(issuer, "ana"), net.now)
    assert refused(connect(net, ticket, Role.SERVER_LINK)) is AuthFailure.NOT_ALLOWED


def test_a_link_ticket_with_a_wrong_secret_or_name_is_refused(net: Network) -> None:
    assert refused(connect(net, link_ticket("child-a", "x" * 24), Role.SERVER_LINK)) is (
        AuthFailure.NOT_ALLOWED
    )
    assert refused(
        connect(net, link_ticket("child-b", LINK_SECRETS["child-b"]), Role.SERVER_LINK)
    ) is (AuthFailure.NOT_ALLOWED)
    ok = connect(net, link_ticket("child-a", LINK_SECRETS["child-a"]), Role.SERVER_LINK)
    assert isinstance(ok.auth, AuthOk) and ok.auth.name == "child-a"


def test_a_link_ticket_presented_by_a_participant_is_refused(net: Network) -> None:
    client = connect(net, link_ticket("child-a", LINK_SECRETS["child-a"]))
    assert refused(client) is AuthFailure.BAD_TICKET


def test_a_controller_link_is_not_taken(net: Network, issuer: Center) -> None:
    ticket = issuer.sealed(credential_of(issuer, "ana"), net.now)
    assert refused(connect(net, ticket, Role.CONTROLLER_LINK)) is AuthFailure.NOT_ALLOWED


def test_a_server_link_message_from_a_participant_connection_is_refused(
    net: Network, issuer: Center
) -> None:
    main = net.servers["main.test:9443"]
    bo = connect(net, issuer.sealed(credential_of(issuer, "bo"), net.now))
    forged = MemberJoined(
        name="mallory", credential_id="x" * 12, role="moderator", server="main", joined_at=0.0
    )
    bo.outgoing += encode_message(forged).data  # a server link's message: never a participant's
    bo.outgoing += encode_message(ChatPosted(sender="ana", text="I am ana")).data
    net.pump()
    assert bo.closed is not None and bo.closed.reason is ByeReason.PROTOCOL_ERROR
    assert main.room.floor is not None and sorted(main.room.floor.seats) == []
    assert main.room.chat_log == ()


def test_a_second_connection_with_the_same_credential_replaces_the_first(
    world: World, issuer: Center
) -> None:
    again = world.net.join(world.b, Client("bo-again", world.bo.ticket, world.net.now))
    assert isinstance(again.auth, AuthOk)
    assert world.bo.closed is not None and world.bo.closed.reason is ByeReason.REPLACED
    floor = world.main.room.floor
    assert floor is not None and floor.seats["bo"].server == "child-b"
    assert sorted(world.ana.roster) == ["ana", "bo", "cy", "di"]
    assert world.a.room.local_members == frozenset()
    again.chat("still me")
    world.net.pump()
    assert world.ana.public_chat() == [("bo", "still me")]
    third = world.net.join(world.b, Client("bo-third", world.bo.ticket, world.net.now))
    assert isinstance(third.auth, AuthOk)
    assert again.closed is not None and again.closed.reason is ByeReason.REPLACED
    assert world.b.room.local_members == frozenset({"bo", "cy", "di"})


def test_a_server_over_capacity_refuses_more(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main", capacity=1)
    net.assign(main, issuer.assignment(ServerRole.MAIN))
    net.participant(main, "ana")
    assert refused(net.participant(main, "bo")) is AuthFailure.SERVER_FULL


def test_member_names_are_usernames_made_fit_for_the_wire() -> None:
    def name(username: str) -> str:
        return member_name(
            Credential(
                credential_id="c" * 12,
                secret="s" * 32,
                username=username,
                display_name="",
                role=TicketRole.PARTICIPANT,
            )
        )

    assert name("ana.lima") == "ana.lima"
    long = name("x" * 128)
    assert len(long) <= 64 and long != name("x" * 127)
    assert "\u202e" not in name("evil\u202eusername")
    assert name("a\u202eb") != name("a\u202db")
