"""Load generator of bench/fanout.py: listener and speaker connections to one system.

One process of the generator. ``bench/fanout.py`` starts several (speakers in
one, listeners spread over the others) and talks to each over stdin/stdout,
one JSON object a line. The same code drives the three systems, only the
framing differs:

- ``townhall``: the live protocol (``townhall.wire``): Hello, Auth with a
  sealed credential, then AUDIO frames on the speaker's stream (a moderator
  among the speakers sets the speaking mode to ``open`` first);
- ``redis``: RESP2 ``SUBSCRIBE`` / ``PUBLISH`` on one channel;
- ``nats``: ``SUB`` / ``PUB`` on one subject (TLS after INFO, as NATS does).

Every system carries the very same payload: a wire ``MediaFrame`` of
``frame_bytes`` bytes whose timestamp field is the speaker's send time
(``CLOCK_MONOTONIC`` in microseconds, one clock for every process), so a
listener computes each frame's latency from the frame itself.

How the generator keeps out of the figures: asyncio ``Protocol``s, each
speaker's frame one write and each listener's answers (Pong) gathered into
one write per loop pass; uvloop when it is installed (cheaper reads); TLS
on memory BIOs over the plain transport, as the live server does (about
half the cost per read of an SSL transport); no copy or decoding per frame:
every frame of a run has the same size, so a read holding many frames is
checked and timestamped at once with numpy, and one holding a few with
``struct``. Control messages are decoded only when the generator needs them
(Welcome, AuthOk, Ping...), never a RosterUpdate. The process also measures
its own event-loop lag, reported next to the figures.

Protocol with bench/fanout.py (JSON lines)::

    < {"cmd": "connect"}                      open every connection
    > {"event": "connected", ...}            counts, failures, join times
    < {"cmd": "run", "start": t0, "window": [w0, w1], "stop": t1, "grace": g}
    > {"event": "result", ...}               frames, deliveries, latency histograms
    < {"cmd": "exit"}                         close everything and exit

Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import socket
import ssl
import struct
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from townhall.wire import (
    PROTOCOL_VERSION,
    AuthFailed,
    AuthOk,
    Bye,
    Channel,
    Codec,
    Hello,
    MediaFrame,
    OpenStream,
    Ping,
    Role,
    SetSpeakingMode,
    SpeakingMode,
    StateSnapshot,
    StreamOpened,
    Welcome,
    encode_message,
)
from townhall.wire.messages import Auth, Error, decode_message, message_class

CHANNEL = b"bench.audio"
HEADER = struct.Struct(">BBBBI")
TS = struct.Struct(">Q")
TS_OFFSET_IN_FRAME = 16  # wire header (8) + stream id (4) + seq (4)
SLOW_RCVBUF = 16 * 1024  # bytes; a slow listener's receive buffer
NUMPY_FROM = 12  # frames in one read from which numpy beats a struct loop
# Latency histogram: log bins 1 % wide, from 1 us.
BINS_PER_E = 1 / math.log(1.01)
N_BINS = int(math.log(60e6) * BINS_PER_E) + 2  # up to a minute

# Control messages the generator must read; every other one is skipped unread.
_WANTED_CONTROL = frozenset(
    type_
    for type_ in range(256)
    if message_class(Channel.CONTROL, type_)
    in (Welcome, AuthOk, AuthFailed, Ping, Bye, StreamOpened, StateSnapshot, Error)
)


def now_us() -> int:
    return time.monotonic_ns() // 1000


def latency_bin(microseconds: np.ndarray) -> np.ndarray:
    return (np.log(np.maximum(microseconds, 1)) * BINS_PER_E).astype(np.int64)


def histogram_percentile(histogram: list[int] | np.ndarray, q: float) -> float:
    """The ``q`` percentile (0-100) of a log-bin histogram, in milliseconds."""
    counts = np.asarray(histogram, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    rank = max(1, math.ceil(total * q / 100))
    index = int(np.searchsorted(np.cumsum(counts), rank))
    return math.exp((index + 0.5) / BINS_PER_E) / 1000


# --- what a frame looks like on each system --------------------------------------------


@dataclass(frozen=True)
class Framing:
    """A fixed-size record that carries one audio frame to a listener."""

    prefix: bytes  # the bytes before the frame; a townhall frame is its own prefix
    size: int  # whole record
    ts_offset: int  # the timestamp, big-endian u64, from the record's start
    dtype: np.dtype[Any] = field(init=False)
    head: int = field(init=False)
    tail: int = field(init=False)

    def __post_init__(self) -> None:
        check_at = max(0, len(self.prefix) - 8)
        names = ["head", "ts"] + (["tail"] if check_at else [])
        formats = ["<u8", ">u8"] + (["<u8"] if check_at else [])
        offsets = [0, self.ts_offset] + ([check_at] if check_at else [])
        dtype = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": self.size}
        )
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "head", int.from_bytes(self.prefix[:8], "little"))
        tail = self.prefix[check_at : check_at + 8] if check_at else self.prefix[:8]
        object.__setattr__(self, "tail", int.from_bytes(tail, "little"))


def townhall_framing(frame_bytes: int) -> Framing:
    prefix = HEADER.pack(1, int(Channel.AUDIO), 0, 0, frame_bytes - 8)
    return Framing(prefix, frame_bytes, TS_OFFSET_IN_FRAME)


def redis_framing(frame_bytes: int) -> Framing:
    prefix = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n" % (
        len(CHANNEL),
        CHANNEL,
        frame_bytes,
    )
    return Framing(prefix, len(prefix) + frame_bytes + 2, len(prefix) + TS_OFFSET_IN_FRAME)


def nats_framing(frame_bytes: int) -> Framing:
    prefix = b"MSG %s 1 %d\r\n" % (CHANNEL, frame_bytes)
    return Framing(prefix, len(prefix) + frame_bytes + 2, len(prefix) + TS_OFFSET_IN_FRAME)


FRAMINGS: dict[str, Callable[[int], Framing]] = {
    "townhall": townhall_framing,
    "redis": redis_framing,
    "nats": nats_framing,
}


# --- counters ----------------------------------------------------------------------------


class Window:
    """The measured window, shared by every connection of the process."""

    def __init__(self) -> None:
        self.start_us = 1 << 62
        self.stop_us = 1 << 62


@dataclass
class GroupStats:
    """What the listeners of one group (``main``, ``child-a``, ``slow``...) received."""

    listeners: int = 0
    frames: int = 0  # every audio frame received, whenever sent
    window_frames: int = 0  # those sent inside the measured window
    latencies: list[np.ndarray] = field(default_factory=list)  # us, window frames
    small: list[int] = field(default_factory=list)  # us, from the struct path
    per_listener: list[int] = field(default_factory=list)

    def histogram(self) -> list[int]:
        parts = list(self.latencies)
        if self.small:
            parts.append(np.asarray(self.small, dtype=np.int64))
        if not parts:
            return []
        counts = np.bincount(latency_bin(np.concatenate(parts)), minlength=1)
        return counts.tolist()


# --- one connection ----------------------------------------------------------------------


class Peer(asyncio.Protocol):
    """One listener or speaker connection, any system; frames counted as they arrive."""

    def __init__(
        self,
        gen: Generator,
        spec: dict[str, Any],
        *,
        speaker: bool,
        stats: GroupStats | None,
    ) -> None:
        self.gen = gen
        self.spec = spec
        self.system: str = gen.system
        self.speaker = speaker
        self.stats = stats
        self.framing = gen.framing
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.joined = asyncio.get_running_loop().create_future()
        self.closed = False
        self.paused = False
        self.out: list[bytes] = []
        self.flush_armed = False
        self.other_frames = 0  # speakers: frames of the other speakers (townhall)
        # townhall
        self.name = ""
        self.stream_id: int | None = None
        self.open_mode = False
        # TLS, run here over the plain transport (see ``start_tls``)
        self.tls: ssl.SSLObject | None = None
        self.tls_in = ssl.MemoryBIO()
        self.tls_out = ssl.MemoryBIO()
        self.secure = False

    # -- writing: one combined write per loop pass ---------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)
        if not self.flush_armed:
            self.flush_armed = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_armed = False
        if self.out and self.transport is not None and not self.closed:
            self.write_now(b"".join(self.out) if len(self.out) > 1 else self.out[0])
        self.out.clear()

    def write_now(self, data: bytes) -> None:
        assert self.transport is not None
        if self.tls is not None:
            self.tls.write(data)
            data = self.tls_out.read()
        self.transport.write(data)

    # -- asyncio ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self.gen.ssl_context is not None and self.system != "nats":
            self.start_tls()
        elif self.system != "nats":  # a NATS client waits for INFO
            self.greet()

    def greet(self) -> None:
        """The client's first words, once the transport (and TLS) is up."""
        if self.system == "townhall":
            self.send(
                encode_message(
                    Hello(role=Role.PARTICIPANT, version=PROTOCOL_VERSION, client="bench/1")
                ).data
            )
        elif self.system == "redis":
            if self.speaker:
                self.send(b"*1\r\n$4\r\nPING\r\n")
            else:
                self.send(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL))
        else:
            connect = {
                "verbose": False,
                "pedantic": False,
                "tls_required": self.tls is not None,
                "name": "bench",
                "lang": "python",
                "version": "1",
                "protocol": 1,
                "echo": False,
            }
            commands = b"CONNECT " + json.dumps(connect).encode() + b"\r\n"
            if not self.speaker:
                commands += b"SUB %s 1\r\n" % CHANNEL
            self.send(commands + b"PING\r\n")

    def start_tls(self) -> None:
        """TLS with memory BIOs over the plain transport, as the live server does.

        Cheaper than an SSL transport per read: one BIO write, then one
        ``read`` per record while the BIO holds bytes (no SSLWantReadError
        raised to end every read).
        """
        assert self.gen.ssl_context is not None
        self.tls = self.gen.ssl_context.wrap_bio(
            self.tls_in, self.tls_out, server_hostname=self.spec["address"].rsplit(":", 1)[0]
        )
        self.handshake(b"")

    def handshake(self, data: bytes) -> bool:
        assert self.tls is not None and self.transport is not None
        if data:
            self.tls_in.write(data)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.transport.write(self.tls_out.read())
            return False
        out = self.tls_out.read()
        if out:
            self.transport.write(out)
        self.secure = True
        if not self.gen.cipher:
            self.gen.cipher = f"{self.tls.version()} {(self.tls.cipher() or ('?',))[0]}"
        self.greet()
        return True

    def decrypt(self) -> bytes:
        tls, tls_in = self.tls, self.tls_in
        assert tls is not None
        chunks: list[bytes] = []
        while tls_in.pending:
            try:
                chunk = tls.read(1 << 18)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        fail(self.joined, ConnectionError(f"closed before joining: {exc}"))
        self.gen.lost += 1

    def data_received(self, data: bytes) -> None:
        if self.tls is not None:
            try:
                if not self.secure:
                    if not self.handshake(data):
                        return
                else:
                    self.tls_in.write(data)
                data = self.decrypt()
            except ssl.SSLError as exc:
                self.fail(f"TLS: {exc}")
                return
            if not data:
                return
        if self.rest:
            data = self.rest + data
        received_us = now_us()
        pos = self.parse(data, received_us)
        self.rest = data[pos:] if pos < len(data) else b""

    def eof_received(self) -> bool | None:
        return None

    # -- the frames ---------------------------------------------------------------------

    def parse(self, data: bytes, received_us: int) -> int:
        framing = self.framing
        size = framing.size
        prefix = framing.prefix
        end = len(data)
        pos = 0
        while pos < end:
            n = (end - pos) // size
            if n >= NUMPY_FROM:
                records = np.frombuffer(data, dtype=framing.dtype, count=n, offset=pos)
                good = records["head"] == framing.head
                if "tail" in records.dtype.names:  # type: ignore[operator]
                    good &= records["tail"] == framing.tail
                k = n if good.all() else int(np.argmin(good))
                if k:
                    self.count_many(records["ts"][:k].astype(np.int64), received_us)
                    pos += k * size
                del records, good
                if k == n:
                    continue
            elif n and data.startswith(prefix, pos):
                (ts,) = TS.unpack_from(data, pos + framing.ts_offset)
                self.count_one(ts, received_us)
                pos += size
                continue
            elif prefix.startswith(data[pos : pos + len(prefix)]):
                return pos  # the start of a record: wait for the rest
            used = self.other(data, pos, end)
            if not used:
                return pos
            pos += used
        return pos

    def count_one(self, ts: int, received_us: int) -> None:
        stats = self.stats
        if stats is None:
            self.other_frames += 1
            return
        stats.frames += 1
        window = self.gen.window
        if window.start_us <= ts < window.stop_us:
            stats.window_frames += 1
            stats.small.append(received_us - ts)

    def count_many(self, ts: np.ndarray, received_us: int) -> None:
        stats = self.stats
        if stats is None:
            self.other_frames += len(ts)
            return
        stats.frames += len(ts)
        window = self.gen.window
        inside = (ts >= window.start_us) & (ts < window.stop_us)
        count = int(inside.sum())
        if count:
            stats.window_frames += count
            stats.latencies.append(received_us - ts[inside])

    def other(self, data: bytes, pos: int, end: int) -> int:
        """Something that is not a listener's audio record: bytes used, 0 for more data."""
        if self.system == "townhall":
            return self.other_townhall(data, pos, end)
        if self.system == "redis":
            return self.other_redis(data, pos, end)
        return self.other_nats(data, pos, end)

    def other_townhall(self, data: bytes, pos: int, end: int) -> int:
        if end - pos < 8:
            return 0
        version, channel, type_, _flags, length = HEADER.unpack_from(data, pos)
        if version != 1:
            raise ConnectionError(f"frame version {version}")
        if end - pos < 8 + length:
            return 0
        if channel == Channel.AUDIO or channel == Channel.VIDEO:
            (ts,) = TS.unpack_from(data, pos + TS_OFFSET_IN_FRAME)
            self.count_one(ts, now_us())
        elif channel == Channel.CONTROL and type_ in _WANTED_CONTROL:
            cls = message_class(Channel.CONTROL, type_)
            assert cls is not None
            self.on_message(decode_message(cls, data[pos + 8 : pos + 8 + length]))
        return 8 + length

    def on_message(self, message: object) -> None:
        match message:
            case Welcome():
                self.send(encode_message(Auth(ticket=base64.b64decode(self.spec["ticket"]))).data)
            case AuthOk(name=name):
                self.name = name
                if not self.speaker:
                    self.set_joined()
                    return
                if self.spec.get("moderator"):
                    self.send(encode_message(SetSpeakingMode(mode=SpeakingMode.OPEN)).data)
                self.send(encode_message(OpenStream(codec=Codec.OPUS)).data)
            case AuthFailed(reason=reason, message=text):
                self.fail(f"auth failed: {reason.value} {text}")
            case Ping():
                self.send(encode_message(message.pong()).data)
            case Bye(reason=reason, message=text):
                self.fail(f"bye: {reason.value} {text}")
            case StateSnapshot(mode=mode):
                self.open_mode = mode is SpeakingMode.OPEN
                self.speaker_ready()
            case StreamOpened(stream=info):
                if info.owner == self.name and info.codec is Codec.OPUS:
                    self.stream_id = info.stream_id
                    self.speaker_ready()
            case Error(code=code, message=text):
                self.gen.errors[f"Error {code.value}: {text}"] += 1

    def speaker_ready(self) -> None:
        if self.speaker and self.stream_id is not None and self.open_mode:
            self.set_joined()

    def other_redis(self, data: bytes, pos: int, end: int) -> int:
        parsed = resp_parse(data, pos, end)
        if parsed is None:
            return 0
        value, new_pos = parsed
        if isinstance(value, list) and value and value[0] == b"subscribe":
            self.set_joined()
        elif value == b"PONG" and self.speaker:
            self.set_joined()
        elif isinstance(value, RespError):
            self.gen.errors[f"redis: {value.text}"] += 1
        return new_pos - pos

    def other_nats(self, data: bytes, pos: int, end: int) -> int:
        line_end = data.find(b"\r\n", pos, end)
        if line_end < 0:
            return 0
        line = data[pos:line_end]
        used = line_end + 2 - pos
        if line.startswith(b"MSG "):
            size = int(line.rsplit(b" ", 1)[1])
            if end < line_end + 2 + size + 2:
                return 0
            (ts,) = TS.unpack_from(data, line_end + 2 + TS_OFFSET_IN_FRAME)
            self.count_one(ts, now_us())
            return used + size + 2
        if line == b"PING":
            self.send(b"PONG\r\n")
        elif line == b"PONG":
            self.set_joined()
        elif line.startswith(b"INFO ") and self.tls is None:
            if self.gen.ssl_context is not None:
                self.start_tls()  # NATS: TLS begins after the plaintext INFO
            else:
                self.greet()
        elif line.startswith(b"-ERR"):
            self.gen.errors[f"nats: {line.decode(errors='replace')}"] += 1
        return used

    # -- states ---------------------------------------------------------------------------

    def set_joined(self) -> None:
        if not self.joined.done():
            self.joined.set_result(None)

    def fail(self, why: str) -> None:
        self.gen.errors[why] += 1
        fail(self.joined, ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()


def fail(future: asyncio.Future[None], error: Exception) -> None:
    """Fail ``future`` if it is pending; nobody may be waiting any more, so no warning."""
    if not future.done():
        future.set_exception(error)
        future.exception()  # marks it retrieved


class RespError:
    def __init__(self, text: str) -> None:
        self.text = text


def resp_parse(data: bytes, pos: int, end: int) -> tuple[Any, int] | None:
    """One RESP2 value at ``pos``: (value, position after it), or None if incomplete."""
    line_end = data.find(b"\r\n", pos, end)
    if line_end < 0:
        return None
    kind, body = data[pos : pos + 1], data[pos + 1 : line_end]
    after = line_end + 2
    if kind == b"+":
        return body, after
    if kind == b"-":
        return RespError(body.decode(errors="replace")), after
    if kind == b":":
        return int(body), after
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None, after
        if end < after + size + 2:
            return None
        return data[after : after + size], after + size + 2
    if kind == b"*":
        items: list[Any] = []
        for _ in range(int(body)):
            parsed = resp_parse(data, after, end)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    raise ConnectionError(f"unexpected RESP byte {kind!r}")


# --- the process -------------------------------------------------------------------------


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.system: str = spec["system"]
        self.framing = FRAMINGS[self.system](spec["frame_bytes"])
        self.window = Window()
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.lost = 0
        self.groups: dict[str, GroupStats] = {}
        self.listeners: list[Peer] = []
        self.speakers: list[Peer] = []
        self.join_seconds: list[float] = []
        self.join_started = math.inf
        self.join_finished = 0.0
        self.failed = 0
        self.ssl_context: ssl.SSLContext | None = None
        self.cipher = ""
        if spec.get("tls"):
            context = ssl.create_default_context(cafile=spec["ca"])
            context.options |= ssl.OP_NO_TICKET  # every join a full handshake, like new clients
            if self.system == "townhall":
                context.set_alpn_protocols(["townhall/1"])
            self.ssl_context = context

    async def open(self, spec: dict[str, Any], *, speaker: bool) -> Peer:
        loop = asyncio.get_running_loop()
        stats = None
        if not speaker:
            stats = self.groups.setdefault(spec["group"], GroupStats())
        host, port = spec["address"].rsplit(":", 1)

        def factory() -> Peer:
            return Peer(self, spec, speaker=speaker, stats=stats)

        if spec.get("slow"):
            # A stalled client with small socket buffers: what the server queues for it
            # then stays on the server's side, where its own slow-listener rules apply.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
            sock.setblocking(False)
            await loop.sock_connect(sock, (host, int(port)))
            _, peer = await loop.create_connection(factory, sock=sock)
        else:
            _, peer = await loop.create_connection(factory, host, int(port))
        await peer.joined
        return peer

    async def connect_all(self) -> None:
        semaphore = asyncio.Semaphore(max(1, int(self.spec.get("join_concurrency", 32))))
        timeout = float(self.spec.get("join_timeout", 60))

        async def one(spec: dict[str, Any], speaker: bool) -> None:
            async with semaphore:
                started = time.monotonic()
                self.join_started = min(self.join_started, started)
                try:
                    peer = await asyncio.wait_for(self.open(spec, speaker=speaker), timeout)
                except (TimeoutError, OSError, ConnectionError, ssl.SSLError) as exc:
                    self.failed += 1
                    self.errors[f"join: {type(exc).__name__}: {exc}"[:160]] += 1
                    return
                finished = time.monotonic()
                self.join_finished = max(self.join_finished, finished)
                self.join_seconds.append(finished - started)
                (self.speakers if speaker else self.listeners).append(peer)
                if not speaker:
                    assert peer.stats is not None
                    peer.stats.listeners += 1

        # Speakers first, one at a time: a townhall moderator must open the floor first.
        for spec in self.spec.get("speakers", []):
            await one(spec, True)
        await asyncio.gather(*(one(spec, False) for spec in self.spec.get("listeners", [])))

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        start, stop, grace = command["start"], command["stop"], command["grace"]
        self.window.start_us = int(command["window"][0] * 1e6)
        self.window.stop_us = int(command["window"][1] * 1e6)
        slow = [p for p in self.listeners if p.spec.get("slow")]
        for peer in slow:
            peer.pause()
        lag = LagProbe(self.window)
        lag_task = asyncio.create_task(lag.run(stop))
        sent, sent_window = await self.speak(start, stop)
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        for peer in slow:
            peer.resume()
        await asyncio.sleep(grace)
        lag_task.cancel()
        cpu = os.times()
        del loop
        return {
            "event": "result",
            "sent": sent,
            "sent_window": sent_window,
            "groups": {
                name: {
                    "listeners": stats.listeners,
                    "frames": stats.frames,
                    "window_frames": stats.window_frames,
                    "histogram": stats.histogram(),
                }
                for name, stats in self.groups.items()
            },
            "per_listener_frames": [
                [p.spec["group"], p.stats.frames if p.stats else 0] for p in self.listeners
            ],
            "speaker_frames_heard": sum(p.other_frames for p in self.speakers),
            "lag_ms_p99": lag.percentile(99),
            "lag_ms_max": lag.maximum(),
            "lost": self.lost,
            "errors": dict(self.errors),
            "cpu_seconds": cpu.user + cpu.system,
        }

    async def speak(self, start: float, stop: float) -> tuple[list[int], list[int]]:
        """Every speaker sends a frame every 20 ms from ``start`` to ``stop``, phases spread."""
        speakers = self.speakers
        if not speakers:
            return [], []
        period = 1 / self.spec.get("frames_per_second", 50)
        frame_bytes = self.spec["frame_bytes"]
        sent = [0] * len(speakers)
        sent_window = [0] * len(speakers)
        window = self.window
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        remaining = [len(speakers)]
        payloads = [os.urandom(frame_bytes - 24) for _ in speakers]
        redis_head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n" % (
            len(CHANNEL),
            CHANNEL,
            frame_bytes,
        )
        nats_head = b"PUB %s %d\r\n" % (CHANNEL, frame_bytes)
        system = self.system

        def tick(index: int, due: float) -> None:
            peer = speakers[index]
            if due >= stop or peer.closed:
                remaining[0] -= 1
                if not remaining[0] and not done.done():
                    done.set_result(None)
                return
            ts = now_us()
            stream_id = peer.stream_id if system == "townhall" else index + 1
            frame = MediaFrame.build(
                Channel.AUDIO,
                stream_id=stream_id or 0,
                seq=sent[index] & 0xFFFF_FFFF,
                timestamp_us=ts,
                payload=payloads[index],
            ).data
            if system == "redis":
                frame = redis_head + frame + b"\r\n"
            elif system == "nats":
                frame = nats_head + frame + b"\r\n"
            peer.write_now(frame)
            sent[index] += 1
            if window.start_us <= ts < window.stop_us:
                sent_window[index] += 1
            following = due + period
            loop.call_at(loop.time() + (following - time.monotonic()), tick, index, following)

        for index in range(len(speakers)):
            first = start + period * index / len(speakers)
            loop.call_at(loop.time() + (first - time.monotonic()), tick, index, first)
        await done
        return sent, sent_window

    def close(self) -> None:
        for peer in self.listeners + self.speakers:
            if peer.transport is not None and not peer.closed:
                peer.transport.abort()


class LagProbe:
    """How late the generator's own loop runs a 5 ms timer: its readiness to read."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.lags: list[float] = []

    async def run(self, stop: float) -> None:
        while time.monotonic() < stop:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if self.window.start_us <= now * 1e6 < self.window.stop_us:
                self.lags.append((now - before - 0.005) * 1000)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.lags, q)) if self.lags else float("nan")

    def maximum(self) -> float:
        return max(self.lags) if self.lags else float("nan")


async def serve(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    gen = Generator(spec)

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "connect":
                started = time.monotonic()
                await gen.connect_all()
                say(
                    {
                        "event": "connected",
                        "listeners": len(gen.listeners),
                        "speakers": len(gen.speakers),
                        "failed": gen.failed,
                        "errors": dict(gen.errors),
                        "seconds": time.monotonic() - started,
                        "join_started": gen.join_started,
                        "join_finished": gen.join_finished,
                        "join_seconds": gen.join_seconds,
                        "cipher": gen.cipher,
                    }
                )
            elif command["cmd"] == "run":
                say(await gen.run(command))
            elif command["cmd"] == "exit":
                return
    finally:
        gen.close()


def main() -> int:
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    if spec.get("loop", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(serve(spec))
            return 0
    asyncio.run(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
