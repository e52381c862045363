"""Large events through the tree: past the roster limit participants see the stage,
themselves and a count; moderators still see everyone (live/stage.py)."""

from __future__ import annotations

import pytest

from tests.live.live_support import LINK_SECRETS, Center, Client, Network, Server
from tests.live.server_support import sealed
from townhall.live.events import ServerRole
from townhall.wire import (
    CloseStream,
    GiveFloor,
    LowerHand,
    RaiseHand,
    RosterUpdate,
    RosterView,
)

LIMIT = 4  # the rooms' roster_limit: a fifth member makes the event large


class Hall:
    def __init__(self, issuer: Center) -> None:
        for name in ("eve", "fay", "gus"):
            issuer.credential(name)
        self.net = Network(issuer)
        self.main = self.net.add_server("main", roster_limit=LIMIT)
        self.a = self.net.add_server("child-a", roster_limit=LIMIT)
        self.net.assign(self.main, issuer.assignment(ServerRole.MAIN, children=("child-a",)))
        self.net.assign(
            self.a,
            issuer.assignment(
                ServerRole.CHILD, parent=self.main.address, link_secret=LINK_SECRETS["child-a"]
            ),
        )

    def join(self, server: Server, name: str) -> Client:
        return self.net.participant(server, name)


@pytest.fixture
def hall(issuer: Center) -> Hall:
    return Hall(issuer)


def large(hall: Hall) -> dict[str, Client]:
    """Ana (moderator) and four participants on both servers: one past the limit."""
    people = {
        "ana": hall.join(hall.main, "ana"),
        "bo": hall.join(hall.a, "bo"),
        "cy": hall.join(hall.main, "cy"),
        "di": hall.join(hall.a, "di"),
    }
    for client in people.values():
        assert sorted(client.roster) == ["ana", "bo", "cy", "di"]  # at the limit: everyone
        assert client.full_roster
    people["eve"] = hall.join(hall.a, "eve")
    return people


def names_sent(client: Client, since: int) -> set[str]:
    sent: set[str] = set()
    for message in client.messages[since:]:
        if isinstance(message, RosterUpdate):
            sent.update(m.name for m in message.changed)
            sent.update(message.left)
    return sent


def test_past_the_limit_participants_see_the_stage_themselves_and_a_count(hall: Hall) -> None:
    people = large(hall)
    for name in ("bo", "cy", "di", "eve"):
        client = people[name]
        assert not client.full_roster, name
        assert sorted(client.roster) == sorted({"ana", name}), name
        assert client.members == 5, name
    assert sorted(people["ana"].roster) == ["ana", "bo", "cy", "di", "eve"]
    assert people["ana"].full_roster

    # Arrivals off stage are not sent to participants; the count follows within a second.
    marks = {name: len(client.messages) for name, client in people.items()}
    fay = hall.join(hall.main, "fay")
    assert sorted(fay.roster) == ["ana", "fay"] and fay.members == 5
    for name in ("bo", "cy", "di", "eve"):
        assert "fay" not in names_sent(people[name], marks[name]), name
    assert "fay" in people["ana"].roster
    hall.net.step(1.0)
    assert {people[n].members for n in ("bo", "cy", "di", "eve")} == {6}
    assert fay.members == 6


def test_hands_the_floor_and_streams_move_members_on_and_off_the_stage(hall: Hall) -> None:
    people = large(hall)
    bo, cy, di, eve = (people[n] for n in ("bo", "cy", "di", "eve"))

    bo.send(RaiseHand())
    hall.net.pump()
    assert cy.roster["bo"].hand_raised and eve.roster["bo"].hand_raised
    bo.send(LowerHand())
    hall.net.pump()
    assert "bo" not in cy.roster and "bo" not in eve.roster
    assert not bo.roster["bo"].hand_raised  # a participant always sees itself

    people["ana"].send(GiveFloor(name="cy"))
    hall.net.pump()
    assert all(c.roster["cy"].floor for c in people.values())

    di.open_stream()
    hall.net.pump()
    assert "di" in bo.roster and "di" in eve.roster  # viewers can name the stream's owner
    stream_id = di.my_stream()
    assert stream_id is not None
    di.send(CloseStream(stream_id=stream_id))
    hall.net.pump()
    assert "di" not in bo.roster and "di" in di.roster
    assert sorted(bo.roster) == ["ana", "bo", "cy"]


def test_a_participant_joining_a_large_event_is_sent_the_stage(hall: Hall) -> None:
    people = large(hall)
    people["cy"].send(RaiseHand())
    hall.net.pump()
    gus = hall.join(hall.a, "gus")
    views = [m for m in gus.messages if isinstance(m, RosterView)]
    assert views == [RosterView(full=False, members=5)]
    assert sorted(gus.roster) == ["ana", "cy", "gus"]
    assert names_sent(gus, 0) <= {"ana", "cy", "gus"}


def test_below_three_quarters_of_the_limit_participants_see_everyone_again(hall: Hall) -> None:
    people = large(hall)
    for name in ("eve", "di"):
        people[name].leave()
        hall.net.pump()
    assert people["bo"].full_roster and people["cy"].full_roster
    for name in ("ana", "bo", "cy"):
        assert sorted(people[name].roster) == ["ana", "bo", "cy"], name
    # and past it once more, the stage again
    hall.join(hall.a, "fay")
    hall.join(hall.main, "gus")
    assert not people["bo"].full_roster
    assert sorted(people["bo"].roster) == ["ana", "bo"]


def test_a_participant_of_protocol_version_1_is_sent_everyone(hall: Hall) -> None:
    people = large(hall)
    net = hall.net
    old = net.join(
        hall.a, Client("fay", sealed(net.center, "fay", now=net.now), net.now, version=1)
    )
    assert old.auth is not None and old.name == "fay"
    assert not any(isinstance(m, RosterView) for m in old.messages)  # it would not know one
    assert sorted(old.roster) == ["ana", "bo", "cy", "di", "eve", "fay"]
    hall.join(hall.main, "gus")
    assert "gus" in old.roster and "gus" not in people["bo"].roster
