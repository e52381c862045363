"""The control link's codec and turn-taking, fed bytes by hand, and fuzzed."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from townhall.controller import link
from townhall.controller.link import (
    Assign,
    Bye,
    ByeCode,
    End,
    EventReport,
    Hello,
    LinkConnection,
    LocalLinkError,
    Ping,
    Pong,
    RemoteLinkError,
    Removal,
    Side,
    Status,
    Welcome,
)

KEY = bytes(range(32))


def assign(**fields: object) -> Assign:
    values: dict[str, object] = {
        "event_id": 7,
        "title": "All hands",
        "role": "child",
        "credentials": {"cred-ana-1": "a" * 64},
        "revoked": ["cred-bo-22"],
        "event_keys": [KEY],
        "center_key": KEY,
        "parent": "127.0.0.1:9443",
        "link_secret": "s" * 43,
        "children": {"grandchild": "b" * 64},
    }
    values.update(fields)
    return Assign(**values)  # type: ignore[arg-type]


def pair() -> tuple[LinkConnection, LinkConnection]:
    """An agent and a Controller, greeted."""
    agent, controller = LinkConnection(Side.AGENT), LinkConnection(Side.CONTROLLER)
    assert controller.receive_data(agent.send(Hello(version=1, software="test"))) == [
        Hello(version=1, software="test")
    ]
    welcome = Welcome(
        version=1, name="main", address="127.0.0.1:9443", zone="internal", keepalive=10
    )
    assert agent.receive_data(controller.send(welcome)) == [welcome]
    assert agent.open and controller.open and agent.version == controller.version == 1
    return agent, controller


def test_a_frame_is_a_big_endian_length_then_msgpack() -> None:
    data = link.encode_frame(End(event_id=7))
    payload = msgspec.msgpack.encode({"type": "end", "event_id": 7})
    assert data == len(payload).to_bytes(4, "big") + payload


def test_every_message_survives_the_trip_even_one_byte_at_a_time() -> None:
    agent, controller = pair()
    down = [
        assign(),
        assign(role="main", parent=None, link_secret=None),
        End(event_id=7),
        Ping(nonce=3),
    ]
    data = b"".join(controller.send(m) for m in down)
    received = []
    for index in range(len(data)):
        received += agent.receive_data(data[index : index + 1])
    assert received == down
    status = Status(
        events=[
            EventReport(event_id=7, role="child", upstream="up", participants=2, children=["x"]),
            EventReport(
                event_id=8,
                role="main",
                upstream="none",
                participants=1,
                removed=[Removal(credential_id="cred-quinn-1", by_credential_id="cred-olga-1")],
            ),
        ],
        participants=2,
        capacity=100,
    )
    up = [status, Pong(nonce=3), Bye(code=ByeCode.NORMAL, message="bye")]
    assert controller.receive_data(b"".join(agent.send(m) for m in up)) == up
    assert controller.closed and agent.closed


def test_a_large_credentials_list_fits_in_one_frame() -> None:
    agent, controller = pair()
    credentials = {f"credential-{i:08d}": f"{i:064x}" for i in range(100_000)}
    message = assign(credentials=credentials)
    data = controller.send(message)
    assert len(data) < link.MAX_FRAME
    assert agent.receive_data(data) == [message]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "assign", "event_id": 0},
        {"type": "end", "event_id": 0},
        {"type": "end", "event_id": 7, "extra": 1},
        {"type": "teleport"},
        {"type": "end"},
        [1, 2, 3],
    ],
)
def test_a_malformed_message_is_the_peers_fault(payload: object) -> None:
    agent, _ = pair()
    data = msgspec.msgpack.encode(payload)
    with pytest.raises(RemoteLinkError):
        agent.receive_data(len(data).to_bytes(4, "big") + data)
    assert agent.closed


@pytest.mark.parametrize(
    "change",
    [
        {"role": "child", "parent": None},
        {"role": "main"},  # a parent and a secret given to the main
        {"credentials": {"bad id!": "a" * 64}},
        {"credentials": {"cred-ana-1": "A" * 64}},
        {"event_keys": []},
        {"event_keys": [b"short"]},
        {"parent": "no port"},
        {"link_secret": "short"},
        {"children": {"../etc": "a" * 64}},
    ],
)
def test_an_assignment_is_checked_field_by_field(change: dict[str, object]) -> None:
    good = msgspec.to_builtins(assign())
    bad = msgspec.msgpack.encode({**good, **change, "type": "assign"})
    agent, _ = pair()
    with pytest.raises(RemoteLinkError):
        agent.receive_data(len(bad).to_bytes(4, "big") + bad)


def test_a_frame_claiming_too_much_is_refused_on_its_header() -> None:
    agent, _ = pair()
    with pytest.raises(RemoteLinkError, match="bytes"):
        agent.receive_data((link.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(RemoteLinkError):
        LinkConnection(Side.CONTROLLER).receive_data(b"\x00\x00\x00\x00")


def test_each_side_says_only_its_own_messages_in_turn() -> None:
    controller = LinkConnection(Side.CONTROLLER)
    # The Controller answers a Hello; it cannot speak first (but it can refuse).
    with pytest.raises(LocalLinkError):
        controller.send(End(event_id=1))
    # The agent's first word is Hello.
    with pytest.raises(RemoteLinkError, match="before the greeting"):
        controller.receive_data(link.encode_frame(Status(events=[])))

    agent, controller = pair()
    with pytest.raises(LocalLinkError):
        agent.send(assign())
    with pytest.raises(RemoteLinkError):
        controller.receive_data(link.encode_frame(assign()))
    agent, controller = pair()
    with pytest.raises(RemoteLinkError):
        agent.receive_data(link.encode_frame(Status(events=[])))


def test_a_refusal_may_come_instead_of_welcome_and_nothing_follows_a_bye() -> None:
    agent, controller = LinkConnection(Side.AGENT), LinkConnection(Side.CONTROLLER)
    controller.receive_data(agent.send(Hello(version=1)))
    refusal = Bye(code=ByeCode.UNKNOWN_SERVER, message="no live server 'x' is registered")
    data = controller.send(refusal) + link.encode_frame(End(event_id=1))
    assert agent.receive_data(data) == [refusal]
    assert agent.closed and agent.receive_data(b"more") == []
    with pytest.raises(LocalLinkError):
        agent.send(Ping(nonce=1))


def test_a_stream_cut_inside_a_frame_is_an_error_and_a_clean_end_is_not() -> None:
    agent, controller = pair()
    data = controller.send(End(event_id=1))
    agent.receive_data(data[:-1])
    with pytest.raises(RemoteLinkError):
        agent.receive_data(b"")
    agent, controller = pair()
    assert agent.receive_data(b"") == [] and agent.closed


def test_the_version_is_the_lower_of_the_two() -> None:
    assert link.welcome_version(Hello(version=9)) == link.VERSION
    assert link.welcome_version(Hello(version=1)) == 1
    agent = LinkConnection(Side.AGENT)
    agent.send(Hello(version=1))
    welcome = Welcome(version=2, name="main", address="h:1", zone="dmz", keepalive=1)
    with pytest.raises(RemoteLinkError, match="version"):
        agent.receive_data(link.encode_frame(welcome))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8), st.sampled_from(list(Side)))
def test_fuzzed_bytes_raise_only_the_links_own_error(chunks: list[bytes], side: Side) -> None:
    connection = LinkConnection(side)
    if side is Side.AGENT:
        connection.send(Hello(version=1))
    for chunk in chunks:
        try:
            connection.receive_data(chunk)
        except RemoteLinkError:
            assert connection.closed
            return


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text(max_size=20)
        | st.binary(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(
                st.sampled_from(
                    ["type", "event_id", "role", "credentials", "events", "code", "nonce", "x"]
                ),
                inner,
                max_size=6,
            )
        ),
        max_leaves=20,
    ),
    st.sampled_from(["hello", "welcome", "assign", "end", "status", "ping", "pong", "bye", "?"]),
)
def test_fuzzed_msgpack_with_a_plausible_type_raises_only_the_links_error(
    value: object, kind: str
) -> None:
    if isinstance(value, dict):
        value = {**value, "type": kind}
    payload = msgspec.msgpack.encode(value)
    connection = LinkConnection(Side.CONTROLLER)
    try:
        connection.receive_data(len(payload).to_bytes(4, "big") + payload)
    except RemoteLinkError:
        pass


@pytest.mark.parametrize(
    "removed",
    [
        [{"credential_id": "bad id!", "by_credential_id": "cred-olga-1"}],
        [{"credential_id": "cred-quinn-1", "by_credential_id": "cred-olga-1", "name": "x" * 201}],
        [{"credential_id": "cred-quinn-1", "by_credential_id": "cred-olga-1"}]
        * (link.MAX_REMOVALS + 1),
    ],
)
def test_a_report_of_removals_is_bounded_and_checked(removed: list[object]) -> None:
    _, controller = pair()
    report = {"event_id": 7, "role": "main", "upstream": "none", "participants": 1}
    payload = msgspec.msgpack.encode({"type": "status", "events": [report | {"removed": removed}]})
    with pytest.raises(RemoteLinkError):
        controller.receive_data(len(payload).to_bytes(4, "big") + payload)


def _visit(**fields: object) -> dict[str, object]:
    return {"credential_id": "cred-quinn-1", "name": "quinn", "joined_at": 1.8e9} | fields


@pytest.mark.parametrize(
    "attendance",
    [
        [_visit()] * (link.MAX_VISITS + 1),  # oversized
        [_visit(left_at=1.8e9 - 1)],  # leaves before it joins
        [_visit(joined_at="yesterday")],
        [_visit(joined_at=float("nan"))],
        [_visit(joined_at=-1.0)],
        [_visit(credential_id="bad id!")],
        [_visit(name="x" * 201)],
        [_visit(extra=1)],
    ],
)
def test_a_report_of_attendance_is_bounded_and_checked(attendance: list[object]) -> None:
    _, controller = pair()
    report = {"event_id": 7, "role": "child", "upstream": "up", "participants": 1}
    status = {"type": "status", "events": [report | {"attendance": attendance}]}
    payload = msgspec.msgpack.encode(status)
    with pytest.raises(RemoteLinkError):
        controller.receive_data(len(payload).to_bytes(4, "big") + payload)


def test_a_report_of_attendance_within_bounds_is_taken_as_sent() -> None:
    _, controller = pair()
    report = {"event_id": 7, "role": "child", "upstream": "up", "participants": 1}
    visits = [_visit(left_at=1.8e9 + 60), _visit(joined_at=1.8e9 + 90)]
    status = {"type": "status", "events": [report | {"attendance": visits}], "at": 1.8e9 + 99}
    payload = msgspec.msgpack.encode(status)
    (message,) = controller.receive_data(len(payload).to_bytes(4, "big") + payload)
    assert isinstance(message, link.Status) and message.at == 1.8e9 + 99
    assert [(v.joined_at, v.left_at) for v in message.events[0].attendance] == [
        (1.8e9, 1.8e9 + 60),
        (1.8e9 + 90, None),
    ]
