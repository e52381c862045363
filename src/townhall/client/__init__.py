"""The Python participant: join tickets to live sessions, for programs and ``townhall join``.

The asyncio shell around ``townhall.wire`` on the participant's side, and
what a participant does with it. docs/client.md is the guide.

Modules, each importing only those above it (and ``townhall.wire``,
``townhall.ticket``):

- ``events``: the typed events a session reports (``Joined``, ``ChatReceived``,
  ``FloorChanged``, ``MediaReceived``, ``Left``…) and their JSON form.
- ``link``: ``Link``, one TLS connection (ALPN ``townhall/1``) checked
  against the ticket, driving a client wire ``Connection``.
- ``selection``: Intelligent Server Selection: ``probe``/``select`` every
  server of a ticket in parallel, ``rank`` them.
- ``session``: ``Participant``, joined through selection, commands as
  methods, rejoining elsewhere when its server is lost.
- ``audio``: WAV ↔ Opus (PyAV), real-time sending, ``Recorder``.
- ``center``: ``CenterClient``, the HTTP calls to the Center with the
  ticket's reverse-proxy cookies.
- ``command``: ``townhall join`` (``register(app)``, ``run_join``).
"""

from townhall.client.events import (
    AttendanceCounted,
    ChatReceived,
    ClientEvent,
    ConnectionLost,
    FloorChanged,
    HandsChanged,
    Joined,
    KeyFrameRequested,
    Left,
    MainReachChanged,
    MediaReceived,
    MediaSkipped,
    PollChanged,
    QuestionChanged,
    Rejoining,
    RequestRefused,
    RosterChanged,
    StateChanged,
    StreamEnded,
    StreamStarted,
    event_json,
)
from townhall.client.selection import Probe, Ranking, probe, rank, select
from townhall.client.session import (
    ClientError,
    ClientSettings,
    JoinFailed,
    NotConnected,
    Participant,
    StreamRefused,
)

__all__ = [
    "AttendanceCounted",
    "ChatReceived",
    "ClientError",
    "ClientEvent",
    "ClientSettings",
    "ConnectionLost",
    "MainReachChanged",
    "FloorChanged",
    "HandsChanged",
    "JoinFailed",
    "Joined",
    "Left",
    "KeyFrameRequested",
    "MediaReceived",
    "MediaSkipped",
    "NotConnected",
    "Participant",
    "PollChanged",
    "Probe",
    "QuestionChanged",
    "Ranking",
    "Rejoining",
    "RequestRefused",
    "RosterChanged",
    "StateChanged",
    "StreamEnded",
    "StreamRefused",
    "StreamStarted",
    "event_json",
    "probe",
    "rank",
    "select",
]
