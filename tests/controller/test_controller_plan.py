"""The Controller's sans-IO core: a timeline of ticks, links and reports, no sockets."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.controller.controller_support import T0, Due, Secrets, tree
from townhall.controller.plan import (
    ATTENDANCE_REFRESH,
    CloseAttendance,
    Command,
    EventTree,
    ForgetEvent,
    LiveState,
    Planner,
    RecordAttendance,
    RecordLiveState,
    RecordRemovals,
    RemovedMember,
    ReportedEvent,
    ReportedVisit,
    SaveAssignments,
    SendAssignment,
    SendEnd,
    StoredAssignment,
    TreeServer,
)
from townhall.live.events import ServerRole

GRACE = timedelta(minutes=15)
TREE = tree(("main", None), ("child-a", "main"), ("child-b", "main"))


def planner(**kwargs: object) -> Planner:
    return Planner(grace=GRACE, new_secret=Secrets(), **kwargs)  # type: ignore[arg-type]


def sends(commands: list[Command]) -> dict[str, SendAssignment]:
    return {c.server: c for c in commands if isinstance(c, SendAssignment)}


def ends(commands: list[Command]) -> set[tuple[str, int]]:
    return {(c.server, c.event_id) for c in commands if isinstance(c, SendEnd)}


def states(commands: list[Command]) -> list[LiveState]:
    return [c.state for c in commands if isinstance(c, RecordLiveState)]


def up(event_id: int, role: str = "child", upstream: str = "up") -> ReportedEvent:
    return ReportedEvent(event_id, role, "none" if role == "main" else upstream, 3)


def all_linked(plan: Planner, *names: str) -> list[Command]:
    out: list[Command] = []
    for name in names or ("main", "child-a", "child-b"):
        out += plan.server_connected(name)
    return out


def ready(plan: Planner, event_id: int = 7) -> list[Command]:
    out = plan.status_received("main", [up(event_id, "main")])
    out += plan.status_received("child-a", [up(event_id)])
    out += plan.status_received("child-b", [up(event_id)])
    return out


def test_a_due_event_goes_preparing_then_ready_then_degraded_then_ended() -> None:
    plan = planner()
    all_linked(plan)
    commands = plan.tick(T0, [Due(7)], {7: TREE})

    save = [c for c in commands if isinstance(c, SaveAssignments)]
    assert len(save) == 1 and [r.server for r in save[0].rows] == ["child-a", "child-b", "main"]
    # Stored before the secrets go out.
    assert isinstance(commands[0], SaveAssignments)
    sent = sends(commands)
    assert set(sent) == {"main", "child-a", "child-b"}
    main, a = sent["main"].assignment, sent["child-a"].assignment
    assert main.role is ServerRole.MAIN and main.parent is None
    assert a.role is ServerRole.CHILD and a.parent == "127.0.0.1:9443"
    assert a.link_secret is not None
    assert main.children["child-a"] == hashlib.sha256(a.link_secret.encode()).hexdigest()
    assert set(main.children) == {"child-a", "child-b"} and not a.children
    assert dict(main.credentials) == {"cred-ana-1": "a" * 64}
    assert states(commands) == [LiveState.PREPARING]
    assert plan.state_of(7) is LiveState.PREPARING

    # Children still connecting: preparing; every child up: ready.
    # (each change of a server's report is recorded too, for the Center's page)
    assert states(plan.status_received("child-a", [up(7, upstream="connecting")])) == [
        LiveState.PREPARING
    ]
    assert states(ready(plan))[-1] is LiveState.READY
    # The same reports again change nothing, and nothing is sent again.
    assert ready(plan) == []
    assert plan.tick(T0 + timedelta(seconds=2), [Due(7)], {7: TREE}) == []

    # A child loses its parent after being ready: degraded, until it is up again.
    assert states(plan.status_received("child-b", [up(7, upstream="waiting")])) == [
        LiveState.DEGRADED
    ]
    assert states(plan.status_received("child-b", [up(7)])) == [LiveState.READY]
    # A server drops its control link: degraded.
    lost = plan.server_lost("child-a")
    assert states(lost) == [LiveState.DEGRADED]
    record = next(c for c in lost if isinstance(c, RecordLiveState))
    assert {s.name: s.connected for s in record.servers} == {
        "main": True,
        "child-a": False,
        "child-b": True,
    }

    # After the end plus the grace: ended everywhere, forgotten.
    later = T0 + timedelta(hours=1) + GRACE
    commands = plan.tick(later, [Due(7)], {7: TREE})
    assert ends(commands) == {("main", 7), ("child-b", 7)}
    assert any(isinstance(c, ForgetEvent) and c.event_id == 7 for c in commands)
    assert states(commands) == [LiveState.ENDED]
    assert plan.state_of(7) is LiveState.ENDED
    # Once only.
    assert plan.tick(later + timedelta(seconds=2), [Due(7)], {7: TREE}) == []


def test_an_event_leaving_the_due_list_is_torn_down() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    commands = plan.tick(T0 + timedelta(seconds=2), [], {})
    assert ends(commands) == {("main", 7), ("child-a", 7), ("child-b", 7)}
    assert states(commands) == [LiveState.ENDED]


def test_a_late_registration_and_a_revocation_reach_every_server_at_the_next_tick() -> None:
    plan = planner()
    all_linked(plan)
    first = sends(plan.tick(T0, [Due(7)], {7: TREE}))
    ready(plan)

    registered = Due(7, credentials={"cred-ana-1": "a" * 64, "cred-bo-22": "b" * 64})
    commands = plan.tick(T0 + timedelta(seconds=2), [registered], {7: TREE})
    sent = sends(commands)
    assert set(sent) == {"main", "child-a", "child-b"}
    assert all("cred-bo-22" in s.assignment.credentials for s in sent.values())
    # Same tree: same link secrets, nothing stored again.
    assert not any(isinstance(c, SaveAssignments) for c in commands)
    for name in sent:
        assert sent[name].assignment.link_secret == first[name].assignment.link_secret
        assert sent[name].assignment.children == first[name].assignment.children

    revoked = replace(registered, revoked=frozenset({"cred-bo-22"}))
    sent = sends(plan.tick(T0 + timedelta(seconds=4), [revoked], {7: TREE}))
    assert all(s.assignment.revoked == {"cred-bo-22"} for s in sent.values())
    assert len(sent) == 3
    assert plan.state_of(7) is LiveState.READY


def test_a_cancelled_event_is_torn_down_once() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    cancelled = Due(7, cancelled=True)
    commands = plan.tick(T0 + timedelta(seconds=2), [cancelled], {7: TREE})
    assert ends(commands) == {("main", 7), ("child-a", 7), ("child-b", 7)}
    assert states(commands) == [LiveState.ENDED]
    assert plan.tick(T0 + timedelta(seconds=4), [cancelled], {7: TREE}) == []


def test_a_cancelled_event_never_assigned_is_only_recorded_ended() -> None:
    plan = planner()
    all_linked(plan)
    commands = plan.tick(T0, [Due(8, cancelled=True)], {8: TREE})
    assert commands == [RecordLiveState(8, LiveState.ENDED, ())]


def test_a_server_that_reconnects_gets_all_its_assignments_at_once() -> None:
    plan = planner()
    all_linked(plan)
    first = plan.tick(T0, [Due(7), Due(9)], {7: TREE, 9: tree(("child-a", None))})
    assert sum(1 for c in first if isinstance(c, SendAssignment) and c.server == "child-a") == 2

    plan.server_lost("child-a")
    # Nothing is sent to a server without a link.
    assert (
        sends(
            plan.tick(
                T0 + timedelta(seconds=2), [Due(7), Due(9)], {7: TREE, 9: tree(("child-a", None))}
            )
        )
        == {}
    )
    again = plan.server_connected("child-a")
    assignments = [c.assignment for c in again if isinstance(c, SendAssignment)]
    assert {(a.event_id, a.role) for a in assignments} == {
        (7, ServerRole.CHILD),
        (9, ServerRole.MAIN),
    }
    assert all(c.server == "child-a" for c in again if isinstance(c, SendAssignment))


def test_a_server_reporting_an_event_not_its_own_is_told_to_end_it_once() -> None:
    plan = planner()
    all_linked(plan)
    # Before the first tick the Planner cannot know: it ends nothing.
    assert ends(plan.status_received("child-a", [up(99)])) == set()
    # The first tick settles what was reported meanwhile.
    assert ends(plan.tick(T0, [Due(7)], {7: TREE})) == {("child-a", 99)}
    assert ends(plan.status_received("child-a", [up(99), up(7)])) == set()
    # A new link, a new End.
    plan.server_lost("child-a")
    plan.server_connected("child-a")
    assert ends(plan.status_received("child-a", [up(99)])) == {("child-a", 99)}


def test_a_server_taken_out_of_the_tree_is_ended_and_a_moved_child_keeps_its_secret() -> None:
    plan = planner()
    all_linked(plan)
    first = sends(plan.tick(T0, [Due(7)], {7: TREE}))
    moved = tree(("main", None), ("child-a", "main"), ("child-b", "child-a"))
    commands = plan.tick(T0 + timedelta(seconds=2), [Due(7)], {7: moved})
    sent = sends(commands)
    assert set(sent) == {"main", "child-a", "child-b"}
    b = sent["child-b"].assignment
    assert b.parent == "127.0.0.1:9444"
    assert b.link_secret == first["child-b"].assignment.link_secret
    assert set(sent["child-a"].assignment.children) == {"child-b"}
    assert not sent["main"].assignment.children.get("child-b")

    smaller = tree(("main", None), ("child-a", "main"))
    commands = plan.tick(T0 + timedelta(seconds=4), [Due(7)], {7: smaller})
    assert ends(commands) == {("child-b", 7)}
    saved = [c for c in commands if isinstance(c, SaveAssignments)]
    assert [r.server for r in saved[0].rows] == ["child-a", "main"]


def test_a_role_change_ends_the_old_room_before_the_new_assignment() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    swapped = tree(("child-a", None), ("main", "child-a"), ("child-b", "child-a"))
    commands = plan.tick(T0 + timedelta(seconds=2), [Due(7)], {7: swapped})
    for name in ("main", "child-a"):
        mine = [c for c in commands if getattr(c, "server", None) == name]
        assert isinstance(mine[0], SendEnd) and isinstance(mine[1], SendAssignment)
    assert sends(commands)["child-a"].assignment.role is ServerRole.MAIN


def test_no_tree_is_degraded_and_a_tree_given_later_prepares() -> None:
    plan = planner()
    all_linked(plan)
    commands = plan.tick(T0, [Due(7)], {7: None})
    assert states(commands) == [LiveState.DEGRADED] and not sends(commands)
    commands = plan.tick(T0, [Due(7)], {7: EventTree(())})
    assert commands == []
    commands = plan.tick(T0 + timedelta(seconds=2), [Due(7)], {7: TREE})
    assert states(commands) == [LiveState.PREPARING] and len(sends(commands)) == 3


def test_a_server_not_linked_at_the_start_makes_the_event_degraded_until_it_comes() -> None:
    plan = planner()
    all_linked(plan, "main", "child-a")
    commands = plan.tick(T0, [Due(7)], {7: TREE})
    assert states(commands) == [LiveState.DEGRADED]
    assert set(sends(commands)) == {"main", "child-a"}
    commands = plan.server_connected("child-b")
    assert set(sends(commands)) == {"child-b"}
    assert states(commands) == [LiveState.PREPARING]
    assert states(ready(plan))[-1] is LiveState.READY


def test_a_restarted_planner_sends_the_very_same_assignments() -> None:
    plan = planner()
    all_linked(plan)
    commands = plan.tick(T0, [Due(7)], {7: TREE})
    rows = next(c for c in commands if isinstance(c, SaveAssignments)).rows
    before = {name: s.assignment for name, s in sends(commands).items()}

    # A new process: other secrets would come from its source, but the rows win.
    restarted = Planner(grace=GRACE, new_secret=lambda: "x" * 40, restored=rows)
    all_linked(restarted)
    commands = restarted.tick(T0 + timedelta(seconds=5), [Due(7)], {7: TREE})
    assert not any(isinstance(c, SaveAssignments) for c in commands)
    assert {name: s.assignment for name, s in sends(commands).items()} == before
    assert states(ready(restarted))[-1] is LiveState.READY


def test_a_restarted_planner_ends_what_is_no_longer_due() -> None:
    rows = (
        StoredAssignment(5, "main", "main", None, None),
        StoredAssignment(5, "child-a", "child", "main", "s" * 20),
    )
    plan = Planner(grace=GRACE, new_secret=Secrets(), restored=rows)
    plan.server_connected("child-a")
    assert plan.status_received("child-a", [up(5)]) == []
    commands = plan.tick(T0, [], {})
    assert ends(commands) == {("child-a", 5)}
    assert ForgetEvent(5) in commands
    assert states(commands) == [LiveState.ENDED]


def test_the_tree_order_is_checked() -> None:
    with pytest.raises(ValueError):
        EventTree(
            (TreeServer("a", "b", "h:1", "internal"), TreeServer("b", None, "h:2", "internal"))
        )
    with pytest.raises(ValueError):
        EventTree(
            (TreeServer("a", None, "h:1", "internal"), TreeServer("a", "a", "h:2", "internal"))
        )


def test_a_restarted_planner_shows_no_passing_degraded_state_while_servers_come_back() -> None:
    rows = (
        StoredAssignment(7, "child-a", "child", "main", "s" * 20),
        StoredAssignment(7, "child-b", "child", "main", "t" * 20),
        StoredAssignment(7, "main", "main", None, None),
    )
    plan = Planner(grace=GRACE, new_secret=Secrets(), restored=rows, settle=timedelta(seconds=15))
    plan.server_connected("main")
    assert states(plan.tick(T0, [Due(7)], {7: TREE})) == []
    assert states(plan.server_connected("child-a")) == []
    # Ready is shown at once...
    plan.server_connected("child-b")
    assert states(ready(plan))[-1] is LiveState.READY
    # ...and once ready, what goes wrong is shown again.
    plan.server_lost("child-b")
    assert plan.state_of(7) is LiveState.DEGRADED


def test_after_the_settling_time_a_server_still_missing_is_shown() -> None:
    rows = (StoredAssignment(7, "main", "main", None, None),)
    plan = Planner(grace=GRACE, new_secret=Secrets(), restored=rows, settle=timedelta(seconds=15))
    assert states(plan.tick(T0, [Due(7)], {7: tree(("main", None))})) == []
    later = T0 + timedelta(seconds=15)
    assert states(plan.tick(later, [Due(7)], {7: tree(("main", None))})) == [LiveState.DEGRADED]


def test_removals_from_the_events_main_server_go_to_the_center_once_and_from_no_one_else() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    quinn = RemovedMember("cred-quinn-1", "cred-olga-1", "quinn", "olga")
    mallory = RemovedMember("cred-ceo-0001", "cred-mal-0001", "ceo", "mallory")

    def removals(commands: list[Command]) -> list[RecordRemovals]:
        return [c for c in commands if isinstance(c, RecordRemovals)]

    # A child (or any server not holding the event as main) cannot bar anyone.
    assert removals(plan.status_received("child-a", [replace(up(7), removed=(mallory,))])) == []
    assert (
        removals(plan.status_received("main", [replace(up(8, "main"), removed=(mallory,))])) == []
    )
    reported = replace(up(7, "main"), removed=(quinn,))
    assert removals(plan.status_received("main", [reported])) == [RecordRemovals(7, (quinn,))]
    # Every later report repeats it: it is recorded once.
    assert removals(plan.status_received("main", [reported])) == []


def attendance(commands: list[Command]) -> list[RecordAttendance | CloseAttendance]:
    return [c for c in commands if isinstance(c, RecordAttendance | CloseAttendance)]


def test_visits_on_the_tree_go_to_the_center_when_new_or_changed_and_then_now_and_again() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    quinn = ReportedVisit("cred-quinn-1", "quinn", T0)
    pia = ReportedVisit("cred-pia-0001", "pia", T0 + timedelta(seconds=5))
    report = replace(up(7), attendance=(quinn, pia))
    at = T0 + timedelta(seconds=10)
    assert attendance(plan.status_received("child-a", [report], at)) == [
        RecordAttendance(7, "child-a", "internal", at, (quinn, pia), 0)
    ]
    # The same report again: nothing; quinn leaves: only quinn goes.
    assert attendance(plan.status_received("child-a", [report], at)) == []
    gone = replace(quinn, left_at=T0 + timedelta(seconds=20))
    report = replace(report, attendance=(gone, pia))
    assert attendance(plan.status_received("child-a", [report], at)) == [
        RecordAttendance(7, "child-a", "internal", at, (gone,), 0)
    ]
    # After a while all of them go again (dating the server, repairing a failed write).
    later = at + ATTENDANCE_REFRESH
    assert attendance(plan.status_received("child-a", [report], later)) == [
        RecordAttendance(7, "child-a", "internal", later, (gone, pia), 0)
    ]
    # A server outside the event's tree counts no one in it.
    plan.server_connected("stranger")
    assert attendance(plan.status_received("stranger", [report], later)) == []


def test_a_lost_server_closes_its_open_visits_where_last_heard_and_they_reopen_if_it_returns() -> (
    None
):
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    quinn = ReportedVisit("cred-quinn-1", "quinn", T0)
    heard = T0 + timedelta(seconds=30)
    plan.status_received("child-b", [replace(up(7), attendance=(quinn,))], heard)
    assert attendance(plan.server_lost("child-b")) == [
        CloseAttendance(7, "child-b", heard, "server-loss")
    ]
    plan.server_connected("child-b")
    back = heard + timedelta(seconds=5)
    # Only the link had gone: quinn is still there, and is open again in the Center.
    assert attendance(
        plan.status_received("child-b", [replace(up(7), attendance=(quinn,))], back)
    ) == [RecordAttendance(7, "child-b", "internal", back, (quinn,), 0)]


def test_at_the_events_end_open_visits_end_with_it_and_anything_left_is_marked_lost() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    quinn = ReportedVisit("cred-quinn-1", "quinn", T0)
    plan.status_received("main", [replace(up(7, "main"), attendance=(quinn,))], T0)
    end = T0 + timedelta(minutes=1)
    assert attendance(plan.tick(end, [Due(7, cancelled=True)], {7: TREE})) == [
        CloseAttendance(7, "main", end, "event-end"),
        CloseAttendance(7, None, None, "server-loss"),
    ]
