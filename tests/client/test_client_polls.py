"""Polls and Q&A from ``townhall join`` and ``Participant`` on a two-server tree over real TLS.

The moderator writes and opens a poll from the command line on the main
server; participants on the child vote and ask from the command line and
from a program; what each of them prints or is told is what is checked.
"""

from __future__ import annotations

import asyncio
import io
import json

from tests.client.client_support import FAST, Issuer, Watcher, start_tree, wait_for
from townhall.client import Participant, PollChanged, QuestionChanged, RequestRefused
from townhall.client.command import JoinOptions, run_join
from townhall.ticket import Role as TicketRole
from townhall.wire import ErrorCode, PollState
from townhall.wire.names import Zone


def lines(out: io.StringIO, kind: str) -> list[dict[str, object]]:
    return [x for x in map(json.loads, out.getvalue().splitlines()) if x["type"] == kind]


async def test_a_poll_from_the_command_line_is_voted_on_both_servers_each_vote_counted_once(
    issuer: Issuer,
) -> None:
    ana = issuer.credential("ana", TicketRole.MODERATOR)
    bo, cy = issuer.credential("bo"), issuer.credential("cy")
    main, child = await start_tree(issuer, ("child-a", Zone.INTERNAL))
    ana_out, bo_out = io.StringIO(), io.StringIO()
    stop = asyncio.Event()
    cy_session = Participant(issuer.ticket(cy, [child.entry()]), settings=FAST)
    try:
        await cy_session.join()
        cy_seen = Watcher(cy_session)
        moderator = asyncio.ensure_future(
            run_join(
                issuer.ticket(ana, [main.entry()]),
                JoinOptions(
                    poll=("Lunch?", "pizza", "soup", "salad"), share_results=True, json=True
                ),
                out=ana_out,
                err=io.StringIO(),
                settings=FAST,
                stop=stop,
            )
        )
        voter = asyncio.ensure_future(
            run_join(
                issuer.ticket(bo, [child.entry()]),
                JoinOptions(vote=(2,), ask=("Is there a vegan option?",), json=True),
                out=bo_out,
                err=io.StringIO(),
                settings=FAST,
                stop=stop,
            )
        )
        opened = await cy_seen.wait(
            lambda e: isinstance(e, PollChanged) and e.poll.state is PollState.OPEN
        )
        assert isinstance(opened, PollChanged)
        poll_id = opened.poll.poll_id
        cy_session.vote(poll_id, (0,))
        await cy_seen.wait(lambda e: isinstance(e, PollChanged) and e.poll.voters == 2)
        cy_session.vote(poll_id, (2,))  # a second vote, through the same child
        refused = await cy_seen.wait(lambda e: isinstance(e, RequestRefused))
        assert refused == RequestRefused(ErrorCode.NOT_ALLOWED, "you have voted in poll 1 already")

        question = await cy_seen.wait(lambda e: isinstance(e, QuestionChanged))
        assert isinstance(question, QuestionChanged) and question.question.asker == "bo"
        cy_session.upvote(question.question.question_id)
        cy_session.upvote(question.question.question_id)
        await cy_seen.wait(lambda e: isinstance(e, RequestRefused) and "upvoted" in e.message)
        await wait_for(lambda: [q.votes for q in cy_session.questions] == [1])

        results = main.room.polls[poll_id]
        assert (results.counts, results.voters) == ((1, 1, 0), 2)
        assert child.room.polls == main.room.polls
        assert child.room.questions == main.room.questions
        stop.set()
        assert await moderator == 0 and await voter == 0
        # both command lines printed the shared results as they moved, ending equal
        for out in (ana_out, bo_out):
            last = lines(out, "poll")[-1]
            assert last["counts"] == [1, 1, 0] and last["voters"] == 2, out.getvalue()
            assert last["question"] == "Lunch?" and last["options"] == ["pizza", "soup", "salad"]
        assert [q["votes"] for q in lines(bo_out, "question")][-1] == 1
        await cy_seen.stop()
    finally:
        await main.close()
        await child.close()
