"""The live server (the spec's Communications Server): event state and the cascade.

The core modules hold no sockets, TLS, asyncio, clocks or randomness (a test
enforces it): time comes in as ``now``, jitter from a callable the caller
gives, bytes through ``Dispatcher``. The asyncio shell that accepts
connections and moves bytes is a thin loop around them: ``server``
(``LiveServer``), with ``tls`` (contexts, and TLS over memory buffers) and
``routing`` (a new connection's handshake until its Auth names the room,
sans-IO too). docs/live.md, "Event state and the cascade", is the guide.

Core modules, each importing only those above it (and ``townhall.wire``,
``townhall.ticket``):

- ``events``: what goes into a room (``MessageReceived``, ``MediaReceived``,
  ``ConnectionLost``, ``AssignmentReceived``…) and what comes out
  (``SendTo``, ``SendToMany``, ``SendMediaTo``, ``CloseConnection``,
  ``ConnectUpstream``, ``RequestWakeup``).
- ``admission``: who may connect (sealed credentials, link tickets) and the
  member's name.
- ``floor``: ``Floor``, the main server's authoritative roster, floor, hand
  queue, mutes, speaking mode, streams and bans.
- ``polls``: ``Polls``, the main server's polls and votes, and ``poll_for``, what one
  participant may see of a poll.
- ``questions``: ``Questions``, the main server's Q&A and upvotes, and
  ``question_for``, what one participant may see of a question.
- ``stage``: ``Stage``, who is on stage by the roster mirror, and whether a large
  event shows its participants only them and a count.
- ``chatlog``: ``ChatLog``, the numbered, bounded chat log every server keeps.
- ``backoff``: ``Backoff``, the reconnect delays.
- ``linkrtt``: ``LinkRoundTrips``, the round trips of the server's links by
  peer server, as histograms for the metrics.
- ``outbox``: ``Outbox``, bounded per-connection send queues that drop media,
  never control or chat, and give one combined write per pass.
- ``room``: ``EventRoom``, one event on one server, main or child.
- ``dispatch``: ``Dispatcher``, which runs a room over wire ``Connection``s
  and an ``Outbox``: the one place that carries out its commands.
"""

from townhall.live.admission import link_ticket, member_name
from townhall.live.backoff import Backoff
from townhall.live.dispatch import Action, Dispatcher
from townhall.live.events import (
    AssignmentReceived,
    CloseConnection,
    Command,
    ConnectionLost,
    ConnectUpstream,
    ConnId,
    Event,
    EventEnded,
    Greeted,
    KeyFramesWanted,
    MediaReceived,
    MessageReceived,
    PassEnded,
    RequestWakeup,
    SendMediaTo,
    SendTo,
    SendToMany,
    ServerRole,
    TimerFired,
    UpstreamConnected,
    UpstreamLost,
)
from townhall.live.floor import Floor
from townhall.live.outbox import Outbox, QueueStats
from townhall.live.room import EventRoom, RoomSettings, Upstream

__all__ = [
    "Action",
    "AssignmentReceived",
    "Backoff",
    "CloseConnection",
    "Command",
    "ConnId",
    "ConnectUpstream",
    "ConnectionLost",
    "Dispatcher",
    "Event",
    "EventEnded",
    "EventRoom",
    "Greeted",
    "KeyFramesWanted",
    "Floor",
    "MediaReceived",
    "MessageReceived",
    "PassEnded",
    "Outbox",
    "QueueStats",
    "RequestWakeup",
    "RoomSettings",
    "SendMediaTo",
    "SendTo",
    "SendToMany",
    "ServerRole",
    "TimerFired",
    "Upstream",
    "UpstreamConnected",
    "UpstreamLost",
    "link_ticket",
    "member_name",
]
