"""A tree of live servers and participants in memory, on a clock stepped by hand.

Real cores everywhere: each server is an ``EventRoom`` run by a
``Dispatcher`` (wire ``Connection``s and an ``Outbox``); each participant is a
client ``Connection`` with a little state of what it saw. ``Network.pump``
is the router: it carries out the dispatchers' actions (connect Up, wakeups,
closes) and moves the bytes each side has to write to the other, until
nothing moves. A pipe can be paused (a slow listener) or cut (a link lost).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from townhall.live import (
    AssignmentReceived,
    CloseConnection,
    ConnectUpstream,
    Dispatcher,
    EventRoom,
    Outbox,
    RequestWakeup,
    RoomSettings,
    ServerRole,
    TimerFired,
)
from townhall.ticket import (
    Credential,
    ServerEntry,
    Zone,
    generate_event_key,
    issue_ticket,
    open_ticket,
)
from townhall.ticket import (
    Role as TicketRole,
)
from townhall.wire import (
    NEED_DATA,
    PROTOCOL_VERSION,
    AttendanceChanged,
    Auth,
    AuthFailed,
    AuthOk,
    Bye,
    ByeReason,
    Channel,
    ChatPosted,
    Codec,
    Connection,
    ConnectionClosed,
    EncodedMessage,
    Error,
    Hello,
    MediaFrame,
    Member,
    Message,
    OpenStream,
    Ping,
    Poll,
    PollUpdated,
    Question,
    QuestionUpdated,
    Role,
    RosterUpdate,
    RosterView,
    SendChat,
    Side,
    State,
    StateSnapshot,
    StreamClosed,
    StreamInfo,
    StreamOpened,
    Welcome,
)

START = 1_770_000_000.0
EVENT_ID = 42
LINK_SECRETS = {"child-a": "a" * 24, "child-b": "b" * 24, "grandchild": "g" * 24}


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Center:
    """Issues tickets for one event, as the Center would."""

    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    event_key: bytes = field(default_factory=generate_event_key)
    credentials: dict[str, Credential] = field(default_factory=dict)

    def credential(self, username: str, role: TicketRole = TicketRole.PARTICIPANT) -> Credential:
        credential = Credential.new(username=username, display_name=username.title(), role=role)
        self.credentials[credential.credential_id] = credential
        return credential

    def sealed(
        self, credential: Credential, now: float, *, event_id: int = EVENT_ID, lifetime: int = 600
    ) -> bytes:
        data = issue_ticket(
            signing_key=self.signing_key,
            event_key=self.event_key,
            event_id=event_id,
            title="All hands",
            center_url="https://center.test/",
            servers=[ServerEntry(name="main", host="main.test", port=9443, zone=Zone.INTERNAL)],
            credential=credential,
            now=int(now),
            lifetime=lifetime,
        )
        contents = open_ticket(data, center_public_key=self.signing_key.public_key(), now=int(now))
        return contents.sealed_credential

    def assignment(
        self,
        role: ServerRole,
        *,
        parent: str | None = None,
        link_secret: str | None = None,
        children: tuple[str, ...] = (),
        revoked: frozenset[str] = frozenset(),
    ) -> AssignmentReceived:
        return AssignmentReceived(
            event_id=EVENT_ID,
            title="All hands",
            role=role,
            credentials={cid: c.secret_sha256 for cid, c in self.credentials.items()},
            event_keys=(self.event_key,),
            revoked=revoked,
            parent=parent,
            link_secret=link_secret,
            children={name: sha256_hex(LINK_SECRETS[name]) for name in children},
        )


class Client:
    """A participant: a client Connection and what it has seen."""

    def __init__(
        self,
        label: str,
        ticket: bytes,
        now: float,
        role: Role = Role.PARTICIPANT,
        version: int = PROTOCOL_VERSION,
    ):
        self.label = label
        self.ticket = ticket
        self.conn = Connection(Side.CLIENT, now=now)
        self.outgoing = bytearray()
        self.name: str | None = None
        self.auth: AuthOk | AuthFailed | None = None
        self.closed: ConnectionClosed | None = None
        self.chats: list[ChatPosted] = []
        self.roster: dict[str, Member] = {}
        self.full_roster = True  # the last RosterView's word: everyone, or the stage
        self.members: int | None = None  # the count a RosterView or AttendanceChanged gave
        self.snapshot: StateSnapshot | None = None
        self.streams: dict[int, StreamInfo] = {}
        self.media: list[MediaFrame] = []
        self.errors: list[Error] = []
        self.polls: dict[int, Poll] = {}
        self.questions: dict[int, Question] = {}
        self.messages: list[Message] = []
        self._chat_seq = itertools.count(1)
        self._media_seq = itertools.count(0)
        # Capture times of media sent: the network's clock once joined (``Network.join``),
        # so frames sent as time goes by are on time for the servers' lateness rule.
        self.clock: Callable[[], float] = lambda: now
        self.send(Hello(role=role, version=version, client="tests/1"))

    def __repr__(self) -> str:
        return f"Client({self.label})"

    def send(self, item: Message | EncodedMessage | MediaFrame) -> None:
        self.outgoing += self.conn.send(item)

    @property
    def is_open(self) -> bool:
        return self.conn.state is State.OPEN

    def chat(self, text: str, to: str | None = None) -> None:
        self.send(SendChat(text=text, to=to, seq=next(self._chat_seq)))

    def open_stream(self, codec: Codec = Codec.OPUS) -> None:
        self.send(OpenStream(codec=codec))

    def my_stream(self, codec: Codec = Codec.OPUS) -> int | None:
        for info in self.streams.values():
            if info.owner == self.name and info.codec is codec:
                return info.stream_id
        return None

    def speak(self, codec: Codec = Codec.OPUS, *, size: int = 40, keyframe: bool = False) -> None:
        stream_id = self.my_stream(codec)
        if stream_id is None:
            raise AssertionError(f"{self.label} has no {codec.value} stream")
        self.send(
            MediaFrame.build(
                codec.channel,
                stream_id=stream_id,
                seq=next(self._media_seq),
                timestamp_us=int(self.clock() * 1_000_000),
                payload=b"\x01" * size,
                keyframe=keyframe,
            )
        )

    def public_chat(self) -> list[tuple[str, str]]:
        return [(c.sender, c.text) for c in self.chats if c.to is None]

    def receive(self, data: bytes, now: float) -> None:
        self.conn.receive_data(data, now)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                return
            match event:
                case ConnectionClosed():
                    self.closed = event
                    return
                case MediaFrame():
                    self.media.append(event)
                    continue
            self.messages.append(event)
            match event:
                case Welcome():
                    self.send(Auth(ticket=self.ticket))
                case AuthOk():
                    self.auth, self.name = event, event.name
                case AuthFailed():
                    self.auth = event
                case Ping():
                    self.send(event.pong())
                case ChatPosted():
                    self.chats.append(event)
                case RosterUpdate():
                    for name in event.left:
                        self.roster.pop(name, None)
                    for member in event.changed:
                        self.roster[member.name] = member
                case RosterView(full=full, members=members):
                    self.roster.clear()
                    self.full_roster, self.members = full, members
                case AttendanceChanged(members=members):
                    self.members = members
                case StateSnapshot():
                    self.snapshot = event
                    self.streams = {info.stream_id: info for info in event.streams}
                case StreamOpened(stream=info):
                    self.streams[info.stream_id] = info
                case StreamClosed(stream_id=stream_id):
                    self.streams.pop(stream_id, None)
                case Error():
                    self.errors.append(event)
                case PollUpdated(poll=poll):
                    self.polls[poll.poll_id] = poll
                case QuestionUpdated(question=question):
                    self.questions[question.question_id] = question

    def leave(self) -> None:
        self.send(Bye(reason=ByeReason.NORMAL, message="bye"))


@dataclass
class Server:
    name: str
    address: str
    room: EventRoom
    dispatcher: Dispatcher


@dataclass
class Pipe:
    """One connection: the server end (``server``, ``conn``) and the other end."""

    server: Server
    conn: str
    client: Client | None = None
    child: Server | None = None
    child_conn: str = ""
    paused: bool = False  # the server's bytes to the other end wait (a slow listener)


class Network:
    def __init__(self, center: Center, *, outbox_limits: tuple[int, int] | None = None) -> None:
        self.center = center
        self.now = START
        self.servers: dict[str, Server] = {}
        self.pipes: list[Pipe] = []
        self.wakeups: list[tuple[float, Server]] = []
        self.blocked: set[str] = set()  # server names that cannot reach their parent
        self.connect_attempts: dict[str, list[float]] = {}
        self._outbox_limits = outbox_limits
        self._ids = itertools.count(1)
        self._jitter = 0.0

    def jitter(self) -> float:
        return self._jitter

    def add_server(self, name: str, **settings: object) -> Server:
        room = EventRoom(
            RoomSettings(
                server_name=name,
                center_public_key=self.center.signing_key.public_key(),
                **{"request_burst": 10_000, **settings},  # type: ignore[arg-type]
            ),
            jitter=self.jitter,
        )
        if self._outbox_limits is None:
            outbox = Outbox()
        else:
            outbox = Outbox(media_limit=self._outbox_limits[0], limit=self._outbox_limits[1])
        server = Server(name, f"{name}.test:9443", room, Dispatcher(room, outbox=outbox))
        self.servers[server.address] = server
        return server

    def assign(self, server: Server, assignment: AssignmentReceived) -> None:
        server.dispatcher.handle(assignment, self.now)
        self.pump()

    def join(self, server: Server, client: Client) -> Client:
        conn = f"{server.name}<{client.label}#{next(self._ids)}"
        client.clock = lambda: self.now
        server.dispatcher.accept(conn, self.now)
        self.pipes.append(Pipe(server, conn, client=client))
        self.pump()
        return client

    def participant(
        self, server: Server, username: str, role: TicketRole = TicketRole.PARTICIPANT
    ) -> Client:
        """A credential the main and children already know, and a participant joined with it."""
        credential = next(
            (c for c in self.center.credentials.values() if c.username == username), None
        )
        if credential is None:
            raise AssertionError(f"no credential for {username}: issue it before assigning")
        return self.join(
            server, Client(username, self.center.sealed(credential, self.now), self.now)
        )

    def pipe_of(self, client: Client) -> Pipe:
        return next(p for p in self.pipes if p.client is client)

    def link_pipes(self, child: Server) -> list[Pipe]:
        return [p for p in self.pipes if p.child is child]

    # -- the router -----------------------------------------------------------------------

    def pump(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            for server in list(self.servers.values()):  # a pass ends: then the writes
                server.dispatcher.end_pass(self.now)
            moved = self._actions()
            for pipe in list(self.pipes):
                moved |= self._transfer(pipe)
            if not moved:
                return
        raise AssertionError("the network did not settle")

    def _actions(self) -> bool:
        acted = False
        for server in list(self.servers.values()):
            for action in server.dispatcher.take_actions():
                acted = True
                match action:
                    case ConnectUpstream(address=address):
                        self._connect(server, address)
                    case RequestWakeup(at=at):
                        self.wakeups.append((at, server))
                    case CloseConnection(conn=conn):
                        self._close(server, conn)
        return acted

    def _connect(self, child: Server, address: str) -> None:
        self.connect_attempts.setdefault(child.name, []).append(self.now)
        parent = self.servers.get(address)
        if parent is None or child.name in self.blocked:
            child.dispatcher.upstream_failed(self.now)
            return
        number = next(self._ids)
        conn, child_conn = f"{parent.name}<{child.name}#{number}", f"{child.name}>up#{number}"
        parent.dispatcher.accept(conn, self.now)
        self.pipes.append(Pipe(parent, conn, child=child, child_conn=child_conn))
        child.dispatcher.upstream_connected(child_conn, self.now)

    def _close(self, server: Server, conn: str) -> None:
        """``server`` closes ``conn``: its last bytes go out, then the other end reads EOF."""
        for pipe in list(self.pipes):
            if pipe.server is server and pipe.conn == conn:
                final = server.dispatcher.drain(conn, self.now)
                self.pipes.remove(pipe)
                server.dispatcher.lost(conn, self.now)
                if pipe.client is not None:
                    if final:
                        pipe.client.receive(final, self.now)
                    pipe.client.receive(b"", self.now)
                elif pipe.child is not None:
                    if final:
                        pipe.child.dispatcher.receive(pipe.child_conn, final, self.now)
                    pipe.child.dispatcher.receive(pipe.child_conn, b"", self.now)
                    pipe.child.dispatcher.lost(pipe.child_conn, self.now)
                return
            if pipe.child is server and pipe.child_conn == conn:
                final = server.dispatcher.drain(conn, self.now)
                self.pipes.remove(pipe)
                server.dispatcher.lost(conn, self.now)
                if final:
                    pipe.server.dispatcher.receive(pipe.conn, final, self.now)
                pipe.server.dispatcher.receive(pipe.conn, b"", self.now)
                pipe.server.dispatcher.lost(pipe.conn, self.now)
                return

    def _transfer(self, pipe: Pipe) -> bool:
        moved = False
        down = b"" if pipe.paused else pipe.server.dispatcher.drain(pipe.conn, self.now)
        if pipe.client is not None:
            client = pipe.client
            if down:
                moved = True
                client.receive(down, self.now)
            if client.outgoing and pipe in self.pipes:
                up, client.outgoing = bytes(client.outgoing), bytearray()
                moved = True
                pipe.server.dispatcher.receive(pipe.conn, up, self.now)
            if client.closed is not None and pipe in self.pipes:
                # The participant hung up: its transport closes, the server reads EOF.
                self.pipes.remove(pipe)
                pipe.server.dispatcher.receive(pipe.conn, b"", self.now)
                pipe.server.dispatcher.lost(pipe.conn, self.now)
                moved = True
        elif pipe.child is not None:
            if down:
                moved = True
                pipe.child.dispatcher.receive(pipe.child_conn, down, self.now)
            up = pipe.child.dispatcher.drain(pipe.child_conn, self.now)
            if up and pipe in self.pipes:
                moved = True
                pipe.server.dispatcher.receive(pipe.conn, up, self.now)
        return moved

    def cut(self, child: Server) -> None:
        """The link between ``child`` and its parent breaks, and stays broken."""
        self.blocked.add(child.name)
        for pipe in self.link_pipes(child):
            self.pipes.remove(pipe)
            pipe.server.dispatcher.lost(pipe.conn, self.now)
            child.dispatcher.lost(pipe.child_conn, self.now)
        self.pump()

    def mend(self, child: Server) -> None:
        self.blocked.discard(child.name)

    def hang_up(self, client: Client) -> None:
        """The participant's transport drops without a Bye."""
        pipe = self.pipe_of(client)
        self.pipes.remove(pipe)
        pipe.server.dispatcher.receive(pipe.conn, b"", self.now)
        pipe.server.dispatcher.lost(pipe.conn, self.now)
        client.receive(b"", self.now)
        self.pump()

    def step(self, seconds: float) -> None:
        """Move the clock; fire the wakeups that are due; settle."""
        self.now += seconds
        due = sorted((w for w in self.wakeups if w[0] <= self.now), key=lambda w: w[0])
        self.wakeups = [w for w in self.wakeups if w[0] > self.now]
        for _, server in due:
            server.dispatcher.handle(TimerFired(), self.now)
        self.pump()


def tree(center: Center, **network: object) -> tuple[Network, Server, Server, Server]:
    """A main server and two children (child-b playing the DMZ server), linked and synced."""
    net = Network(center, **network)  # type: ignore[arg-type]
    main = net.add_server("main")
    a = net.add_server("child-a")
    b = net.add_server("child-b")
    net.assign(main, center.assignment(ServerRole.MAIN, children=("child-a", "child-b")))
    for child in (a, b):
        net.assign(
            child,
            center.assignment(
                ServerRole.CHILD, parent=main.address, link_secret=LINK_SECRETS[child.name]
            ),
        )
    return net, main, a, b


def audio_frames(client: Client) -> list[MediaFrame]:
    return [f for f in client.media if f.channel is Channel.AUDIO]


@dataclass
class World:
    net: Network
    main: Server
    a: Server
    b: Server
    ana: Client  # moderator, on main
    bo: Client  # on child-a
    cy: Client  # on child-b
    di: Client  # on child-b

    @property
    def everyone(self) -> list[Client]:
        return [self.ana, self.bo, self.cy, self.di]
