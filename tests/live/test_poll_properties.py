"""Property test: whoever votes, however often, through whatever server, each member counts once.

Members on a main server and two children vote (again and again, in polls
that are open or closed), leave and come back on another server, and links
break and mend. After every step the main server's results hold together;
once every link is mended and the tree has settled, every server holds the
main server's results and every participant was shown them as its role may
see them.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.live.live_support import Center, Client, tree
from townhall.live.polls import poll_for
from townhall.live.questions import question_for
from townhall.ticket import Role as TicketRole
from townhall.wire import (
    AskQuestion,
    ClosePoll,
    CreatePoll,
    OpenPoll,
    PollState,
    UpvoteQuestion,
    Vote,
)

NAMES = ["ana", "bo", "cy", "di", "pat"]
MODERATORS = {"ana", "di"}
names = st.sampled_from(NAMES)
choices = st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True).map(tuple)


class PollTreeMachine(RuleBasedStateMachine):
    @initialize()
    def build(self) -> None:
        issuer = Center()
        for name in NAMES:
            role = TicketRole.MODERATOR if name in MODERATORS else TicketRole.PARTICIPANT
            issuer.credential(name, role)
        self.net, self.main, a, b = tree(issuer)
        self.servers = [self.main, a, b]
        self.children = [a, b]
        self.tickets: dict[str, bytes] = {}
        self.clients: dict[str, Client] = {}
        for index, name in enumerate(NAMES):
            client = self.net.participant(self.servers[index % 3], name)
            self.clients[name] = client
            self.tickets[name] = client.ticket
        ana = self.clients["ana"]
        ana.send(CreatePoll(question="One?", options=("a", "b", "c")))
        ana.send(CreatePoll(question="Many?", options=("a", "b", "c", "d"), multiple=True))
        ana.send(AskQuestion(text="Why?", anonymous=True))
        self.net.pump()
        ana.send(OpenPoll(poll_id=1))
        ana.send(OpenPoll(poll_id=2))
        self.net.pump()

    def client(self, name: str) -> Client | None:
        client = self.clients.get(name)
        return client if client is not None and client.is_open else None

    @rule(name=names, poll_id=st.integers(1, 3), picked=choices)
    def vote(self, name: str, poll_id: int, picked: tuple[int, ...]) -> None:
        if (client := self.client(name)) is not None:
            client.send(Vote(poll_id=poll_id, choices=picked))

    @rule(name=names)
    def upvote(self, name: str) -> None:
        if (client := self.client(name)) is not None:
            client.send(UpvoteQuestion(question_id=1))

    @rule(poll_id=st.integers(1, 2))
    def close(self, poll_id: int) -> None:
        if (client := self.client("di")) is not None:
            client.send(ClosePoll(poll_id=poll_id))

    @rule(name=names, server=st.integers(0, 2))
    def move(self, name: str, server: int) -> None:
        if (client := self.client(name)) is not None:
            client.leave()
            self.net.pump()
        self.clients[name] = self.net.join(
            self.servers[server], Client(f"{name}+", self.tickets[name], self.net.now)
        )

    @rule(child=st.integers(0, 1))
    def cut(self, child: int) -> None:
        self.net.cut(self.children[child])

    @rule(child=st.integers(0, 1))
    def mend(self, child: int) -> None:
        self.net.mend(self.children[child])

    @rule()
    def pump(self) -> None:
        self.net.pump()

    @rule()
    def settle(self) -> None:
        for child in self.children:
            self.net.mend(child)
        self.net.step(40)
        self.net.step(40)
        polls, questions = self.main.room.polls, self.main.room.questions
        for child in self.children:
            assert child.room.polls == polls and child.room.questions == questions, child.name
        for name, client in self.clients.items():
            if client.is_open:
                moderator = name in MODERATORS
                shown = {i: poll_for(p, moderator=moderator) for i, p in polls.items()}
                assert client.polls == shown, name
                cut = {i: question_for(q, moderator=moderator) for i, q in questions.items()}
                assert client.questions == cut, name

    @invariant()
    def each_member_counts_once(self) -> None:
        if not hasattr(self, "main"):
            return
        polls = self.main.room.polls
        for poll in polls.values():
            assert poll.counts is not None and poll.voters is not None
            assert poll.voters <= len(NAMES)
            if poll.multiple:
                assert poll.voters <= sum(poll.counts) <= poll.voters * len(poll.options)
            else:
                assert sum(poll.counts) == poll.voters
            assert all(count <= poll.voters for count in poll.counts)
        assert polls[1].state is not PollState.DRAFT
        question = self.main.room.questions[1]
        assert question.votes <= len(NAMES) - 1  # anyone but its asker, once


PollTreeMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_every_member_counts_once_in_any_tree_whatever_happens = PollTreeMachine.TestCase
