// The room page: ticket from the Center, server selection, the session, and what it shows.
//
// Gets a join ticket as JSON from the Center (a same-origin JSON POST), probes every
// live server it lists over wss:// in parallel (Hello/Welcome, then Ping/Pong for the
// round trip and the load, ranked as townhall.client.selection ranks them), joins the
// best and falls back down the ranking. Losing the server rejoins another; chat the
// new server replays is dropped by (sender, seq), as townhall.client.session does.
// Media capture, codecs and playout are media/*.js; the wire format is wire.js; the
// Polls and Questions panels are polls.js.

import { createPanels } from "./polls.js";
import { rank } from "./selection.js";
import { Channel, decodeFrame, encodeMedia, encodeMessage, PROTOCOL_VERSION, ProtocolError, utf8Length, CHAT_TEXT_MAX_BYTES } from "./wire.js";

const CLIENT_NAME = "townhall-browser/0.1";
const PROBE_TIMEOUT_MS = 3000;
const PINGS = 3;
const JOIN_TIMEOUT_MS = 10000;
const REJOIN_TRIES = 8;
const SEEN_CHAT = 100000;
const PING_INTERVAL_MS = 15000; // as the wire core's keepalive (docs/protocol.md, "Time")
const IDLE_TIMEOUT_MS = 45000;
const FINAL = new Set(["removed", "replaced", "event-ended", "auth-failed", "protocol-error"]);
const TRY_NEXT = new Set(["server-full", "event-not-live", "wrong-event", "in-use"]);
const SAYS = {
  removed: "A moderator removed you from the event.",
  replaced: "You joined this event from another window or device, so this one was closed.",
  "event-ended": "The event has ended.",
  "auth-failed": "The live server refused your ticket.",
  expired: "Your ticket has expired. Reload the page to get a new one.",
};

const $ = (id) => document.getElementById(id);
const eventId = Number((location.pathname.match(/^\/events\/(\d+)\/room$/) || [])[1]);

const room = {
  ticket: null,
  link: null,
  server: null,
  name: null,
  moderator: false,
  recording: "off", // RecordingChanged: "off", "recording" or "paused"
  title: "",
  mode: "moderated",
  attendance: 0,
  roster: new Map(),
  everyoneListed: true, // false in a large event: the roster holds the stage and us (RosterView)
  hands: [],
  streams: new Map(),
  seen: new Set(),
  seenOrder: [],
  chat: [],
  chatSeq: Date.now() % 2 ** 32,
  leaving: false,
  selfMuted: false,
  ended: null,
  rejoins: 0,
  media: null,
  playout: null,
  mic: null,
  micStream: null,
  mediaSeq: new Map(),
  videos: new Map(),
  senders: new Map(),
  skipped: { audio: 0, video: 0, notices: 0 }, // what the server told us it dropped
  behindTimer: null,
};

// -- telling the user -----------------------------------------------------------------

function status(text) {
  $("status").textContent = text;
}

function problem(key, text) {
  let p = document.querySelector(`#problems [data-key="${key}"]`);
  if (!text) {
    if (p) p.remove();
    return;
  }
  if (!p) {
    p = document.createElement("p");
    p.dataset.key = key;
    $("problems").append(p);
  }
  p.textContent = text;
}

// The server dropped media for us (MediaDropped): say so briefly, then let it fade. A
// status, not an alert: nothing is wrong to act on, and what follows is current again.
const BEHIND_SHOWN_MS = 5000;
const BEHIND_FADE_MS = 1000;
const isCount = (n) => Number.isSafeInteger(n) && n >= 0;

function showBehind(notice) {
  const { audio_frames: audio, video_frames: video } = notice;
  if (!isCount(audio) || !isCount(video)) return;
  room.skipped.audio += audio;
  room.skipped.video += video;
  room.skipped.notices += 1;
  const note = $("behind");
  note.textContent = `Your connection is behind: ${audio} audio / ${video} video frames skipped.`;
  note.classList.remove("fading");
  note.hidden = false;
  clearTimeout(room.behindTimer);
  room.behindTimer = setTimeout(() => {
    note.classList.add("fading");
    room.behindTimer = setTimeout(() => {
      note.hidden = true;
      note.classList.remove("fading");
    }, BEHIND_FADE_MS);
  }, BEHIND_SHOWN_MS);
}

// -- the ticket ---------------------------------------------------------------------

async function fetchTicket() {
  let response;
  try {
    response = await fetch(`/api/v1/events/${eventId}/browser-ticket`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: "{}",
    });
  } catch {
    throw new JoinError("center", "Cannot reach the Center to get a ticket. Check your connection and reload.");
  }
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (response.status === 401) {
    throw new JoinError("signin", "Sign in to the Center to join this event.");
  }
  if (!response.ok) {
    const message = (body.error && body.error.message) || `the Center answered ${response.status}`;
    throw new JoinError("center", `No ticket for this event: ${message}.`);
  }
  const servers = Array.isArray(body.servers) ? body.servers : [];
  const sealed = Uint8Array.from(atob(String(body.sealed_credential || "")), (c) => c.charCodeAt(0));
  return { ...body, servers, sealed };
}

class JoinError extends Error {
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
}

// -- one WebSocket to one live server ---------------------------------------------------

class Link {
  constructor(server) {
    this.server = server;
    this.waiters = [];
    this.onMessage = null;
    this.onClose = null;
    this.closed = null;
    this.nonce = 0;
    const host = server.host.includes(":") ? `[${server.host}]` : server.host;
    this.ws = new WebSocket(`wss://${host}:${server.port}/live`);
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error("cannot connect"));
    });
    this.ws.onmessage = (event) => this.received(event.data);
    this.ws.onclose = (event) => this.lost(event);
  }

  received(data) {
    this.lastHeard = performance.now();
    let message;
    try {
      message = decodeFrame(data);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.send({ type: "Bye", reason: "protocol-error", message: error.message.slice(0, 1000) });
        this.ws.close(1002);
        return;
      }
      throw error;
    }
    if (message.type === "Ping") {
      this.send({ type: "Pong", nonce: message.nonce, load: null });
      return;
    }
    if (message.type === "Bye") this.closed = { reason: message.reason, message: message.message, byPeer: true };
    if (message.type === "AuthFailed") this.closed = { reason: "auth-failed", failure: message.reason, message: message.message, byPeer: true };
    const waiter = this.waiters.find((w) => w.match(message));
    if (waiter) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(message);
      return;
    }
    if (this.onMessage) this.onMessage(message);
  }

  // A server that vanishes without closing (a cut cable) is noticed here, not by TCP.
  keepAlive() {
    this.lastHeard = performance.now();
    this.keepalive = setInterval(() => {
      const quiet = performance.now() - this.lastHeard;
      if (quiet > IDLE_TIMEOUT_MS) {
        this.closed = { reason: "idle-timeout", message: "the server stopped answering", byPeer: false };
        this.ws.close();
        this.lost({ code: 1006 });
      } else if (quiet > PING_INTERVAL_MS) {
        this.send({ type: "Ping", nonce: ++this.nonce });
      }
    }, PING_INTERVAL_MS / 3);
  }

  lost(event) {
    clearInterval(this.keepalive);
    if (this.lostAlready) return;
    this.lostAlready = true;
    if (!this.closed) this.closed = { reason: "connection-lost", message: `closed (${event.code})`, byPeer: true };
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(this.closed.message || this.closed.reason));
    if (this.onClose) this.onClose(this.closed);
  }

  wait(match, ms) {
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve, reject };
      this.waiters.push(waiter);
      setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error("timed out"));
        }
      }, ms);
    });
  }

  send(message) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(encodeMessage(message));
    return true;
  }

  sendBytes(bytes) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    // A slow socket drops media rather than queueing it without bound.
    if (this.ws.bufferedAmount > 512 * 1024) return false;
    this.ws.send(bytes);
    return true;
  }

  close(message) {
    clearInterval(this.keepalive);
    this.onClose = null;
    this.send({ type: "Bye", reason: "normal", message });
    this.ws.close(1000);
  }
}

// -- Intelligent Server Selection ------------------------------------------------------

async function probe(server) {
  let link;
  const started = performance.now();
  try {
    link = new Link(server);
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), PROBE_TIMEOUT_MS));
    const run = (async () => {
      await link.opened;
      link.send({ type: "Hello", role: "participant", version: PROTOCOL_VERSION, client: CLIENT_NAME });
      const welcome = await link.wait((m) => m.type === "Welcome", PROBE_TIMEOUT_MS);
      let rtt = Infinity;
      let load = null;
      for (let i = 0; i < PINGS; i++) {
        const nonce = ++link.nonce;
        const sent = performance.now();
        link.send({ type: "Ping", nonce });
        const pong = await link.wait((m) => m.type === "Pong" && Number(m.nonce) === nonce, PROBE_TIMEOUT_MS);
        rtt = Math.min(rtt, performance.now() - sent);
        load = pong.load || load;
      }
      return { server, link, reachable: true, rtt, load, serverName: welcome.server };
    })();
    return await Promise.race([run, timeout]);
  } catch (error) {
    if (link) link.ws.close();
    return { server, reachable: false, error: error.message, ms: performance.now() - started };
  }
}

// ?server=NAME joins that server only, as `townhall join --server` does; a rejoin tries all.
const onlyServer = new URLSearchParams(location.search).get("server");

async function connect({ rejoin = false } = {}) {
  const servers = room.ticket.servers.filter((s) => rejoin || !onlyServer || s.name === onlyServer);
  const probes = await Promise.all(servers.map(probe));
  const ranking = rank(probes);
  const failures = probes.filter((p) => !p.reachable).map((p) => `${p.server.name}: ${p.error}`);
  let reason = "unreachable";
  try {
    for (const p of ranking.filter((q) => q.reachable)) {
      const link = p.link;
      p.link = null;
      link.send({ type: "Auth", ticket: room.ticket.sealed });
      let answer;
      try {
        answer = await link.wait((m) => m.type === "AuthOk" || m.type === "AuthFailed", JOIN_TIMEOUT_MS);
      } catch (error) {
        failures.push(`${p.server.name}: ${error.message}`);
        link.ws.close();
        continue;
      }
      if (answer.type === "AuthFailed") {
        failures.push(`${p.server.name}: ${answer.reason}`);
        if (TRY_NEXT.has(answer.reason)) {
          reason = answer.reason;
          continue;
        }
        throw new JoinError(answer.reason, SAYS[answer.reason] || `The live server refused the ticket (${answer.reason}).`);
      }
      adopt(link, p, answer);
      return;
    }
  } finally {
    for (const p of ranking) if (p.link) p.link.close("joined another server");
  }
  if (reason === "event-not-live") {
    throw new JoinError(reason, "The event is not live on its servers now: it has ended, or has not started yet.");
  }
  throw new JoinError(reason, `No live server took us: ${failures.join("; ") || "the ticket lists none"}.`);
}

function adopt(link, probeResult, ok) {
  room.link = link;
  room.server = probeResult.server.name;
  room.name = ok.name;
  room.moderator = ok.moderator;
  room.roster.clear();
  room.everyoneListed = true; // until the new server sends a RosterView
  room.streams.clear();
  room.mediaSeq.clear();
  link.onMessage = onMessage;
  link.onClose = onClosed;
  link.keepAlive();
  $("who").textContent = `${ok.display_name || ok.name}${ok.moderator ? " (moderator)" : ""} · on ${room.server}`;
  $("who").title = ok.name;
  $("moderation").hidden = !ok.moderator;
  panels.joined(ok.name, ok.moderator);
  $("room").hidden = false;
  problem("connection", "");
  status(`Connected to ${room.server}.`);
  for (const kind of room.senders.keys()) openStream(kind);
  render();
}

function onClosed(closed) {
  room.link = null;
  for (const stream of room.streams.values()) closeView(stream.stream_id);
  room.streams.clear();
  if (room.leaving) return;
  if (FINAL.has(closed.reason)) {
    finish(closed.reason, closed.message);
    return;
  }
  rejoin(closed);
}

async function rejoin(closed) {
  for (let attempt = 1; attempt <= REJOIN_TRIES && !room.leaving; attempt++) {
    const delay = Math.min(8000, 250 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    problem("connection", `The connection to ${room.server || "the live server"} was lost (${closed.reason}); reconnecting, try ${attempt} of ${REJOIN_TRIES}…`);
    status("Reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    try {
      await connect({ rejoin: true });
      room.rejoins += 1;
      return;
    } catch (error) {
      if (error.reason === "expired") {
        try {
          room.ticket = await fetchTicket();
        } catch (refresh) {
          finish("expired", refresh.message);
          return;
        }
        continue;
      }
      if (!(error.reason === "unreachable" || TRY_NEXT.has(error.reason))) {
        finish(error.reason, error.message);
        return;
      }
    }
  }
  if (!room.leaving) finish("connection-lost", `No live server took us back after ${REJOIN_TRIES} tries.`);
}

function finish(reason, message) {
  room.ended = { reason, message };
  stopSending();
  problem("connection", "");
  const said = SAYS[reason];
  const repeats = said && message && said.toLowerCase().includes(message.toLowerCase().replace(/\.$/, ""));
  problem("ended", said ? `${said}${message && !repeats ? ` (${message})` : ""}` : message || reason);
  status("You are no longer in the event.");
  for (const button of document.querySelectorAll("main button, main select, main input")) button.disabled = true;
}

// -- what the server says ----------------------------------------------------------------

function onMessage(message) {
  if (panels.onMessage(message)) return;
  switch (message.type) {
    case "Media":
      onMedia(message);
      return;
    case "ChatPosted": {
      const key = `${message.sender}\u0000${message.seq}`;
      if (room.seen.has(key)) return;
      room.seen.add(key);
      room.seenOrder.push(key);
      if (room.seenOrder.length > SEEN_CHAT) room.seen.delete(room.seenOrder.shift());
      room.chat.push({ sender: message.sender, shown: message.sender_display_name || message.sender, text: message.text, to: message.to });
      showChat(message);
      return;
    }
    case "RosterUpdate":
      for (const name of message.left) room.roster.delete(name);
      for (const member of message.changed) room.roster.set(member.name, member);
      renderSoon();
      return;
    case "RosterView":
      room.roster.clear();
      room.everyoneListed = message.full;
      room.attendance = message.members;
      renderSoon();
      return;
    case "AttendanceChanged":
      room.attendance = message.members;
      renderSoon();
      return;
    case "StateSnapshot":
      room.title = message.title;
      room.mode = message.mode;
      room.attendance = message.attendance;
      for (const id of room.streams.keys()) if (!message.streams.some((s) => s.stream_id === id)) streamEnded(id);
      for (const info of message.streams) streamStarted(info);
      render();
      return;
    case "StreamOpened":
      streamStarted(message.stream);
      return;
    case "StreamClosed":
      streamEnded(message.stream_id);
      return;
    case "RequestKeyFrame":
      // A viewer of one of our video streams lost its picture: the next frame is a key frame.
      for (const sender of room.senders.values()) {
        if (sender.streamId === message.stream_id && sender.handle.requestKeyFrame) sender.handle.requestKeyFrame();
      }
      return;
    case "MediaDropped":
      // Our connection fell behind and the server skipped us ahead; a video stream resumes
      // at the key frame the server already asked its owner for.
      showBehind(message);
      return;
    case "RecordingChanged":
      // Everyone is shown whether the event is being recorded (docs/recording.md).
      showRecording(message.state);
      return;
    case "UpstreamChanged":
      // Our server lost (or got back) its link toward the main server: the room goes on here.
      problem("upstream", message.reachable ? "" : "Part of the event is out of reach; chat waits until it is back.");
      return;
    case "Error":
      problem("refused", `Refused: ${message.message || message.code}.`);
      setTimeout(() => problem("refused", ""), 8000);
      return;
    default:
      return;
  }
}

// -- roster, hands, floor ------------------------------------------------------------------

// What people see of a member: the display name from its ticket; the name (its
// username) is its identity, in commands and in a tooltip. Always set as text, never HTML.
function shown(name) {
  const member = room.roster.get(name);
  return (member && member.display_name) || name;
}

function nameLabel(tag, name, text = shown(name)) {
  const label = Object.assign(document.createElement(tag), { textContent: text });
  if (text !== name) label.title = name;
  return label;
}

// A moderator of a town hall is sent every arrival, thousands a minute. Past LISTED_AT_MOST
// members the page lists that many (the stage first: moderators, the floor, raised hands,
// you) with the count of the others, its menus offer the same, and it redraws for roster
// changes at most every REDRAW_MS: redrawing ten thousand names and two menus of them took
// Chromium half a second, for every arrival.
const LISTED_AT_MOST = 200;
const REDRAW_MS = 250;
const collator = new Intl.Collator(); // what localeCompare uses, made once
let redraw = null;

function renderSoon() {
  if (room.roster.size <= LISTED_AT_MOST) {
    render();
  } else if (redraw === null) {
    redraw = setTimeout(() => {
      redraw = null;
      render();
    }, REDRAW_MS);
  }
}

function onStage(name) {
  const m = room.roster.get(name);
  return name === room.name || m.moderator || m.floor || m.hand_raised;
}

function render() {
  document.title = `${room.title || "Event"} · Townhall`;
  $("title").textContent = room.title || `Event ${eventId}`;
  const here = room.everyoneListed ? room.roster.size : room.attendance;
  $("attendance").textContent = `(${here.toLocaleString()} here)`;
  $("roster-heading").textContent = room.everyoneListed ? "Present" : "On stage";
  $("stage-note").hidden = room.everyoneListed;
  const raised = [...room.roster.values()].filter((m) => m.hand_raised).map((m) => m.name);
  room.hands = room.hands.filter((n) => raised.includes(n)).concat(raised.filter((n) => !room.hands.includes(n)).sort());
  const holder = [...room.roster.values()].find((m) => m.floor);
  $("floor").textContent = holder ? `${shown(holder.name)} holds the floor.` : "Nobody holds the floor.";

  const hands = $("hands");
  hands.replaceChildren(...room.hands.map((name) => nameLabel("li", name)));
  $("no-hands").hidden = room.hands.length > 0;

  const roster = $("roster");
  const labels = new Map([...room.roster.keys()].map((name) => [name, shown(name)]));
  const names = [...labels.keys()].sort((a, b) => collator.compare(labels.get(a), labels.get(b)) || collator.compare(a, b));
  let listed = names;
  if (names.length > LISTED_AT_MOST) {
    listed = names.filter(onStage).concat(names.filter((n) => !onStage(n))).slice(0, LISTED_AT_MOST);
  }
  const more = names.length - listed.length;
  const moreItem = Object.assign(document.createElement("li"), {
    id: "roster-more",
    className: "muted",
    textContent: `and ${more.toLocaleString()} more`,
  });
  roster.replaceChildren(
    ...listed.map((name) => {
      const m = room.roster.get(name);
      const li = document.createElement("li");
      li.dataset.name = name;
      const label = nameLabel("span", name);
      label.className = "name";
      li.append(label);
      const badges = [];
      if (m.moderator) badges.push("moderator");
      if (m.floor) badges.push("has the floor");
      if (m.hand_raised) badges.push("hand raised");
      if (m.muted) badges.push("muted");
      if (name === room.name) badges.push("you");
      for (const text of badges) li.append(Object.assign(document.createElement("span"), { className: "badge", textContent: text }));
      return li;
    }),
    ...(more > 0 ? [moreItem] : []),
  );

  const me = room.roster.get(room.name);
  const hand = $("hand");
  hand.textContent = me && me.hand_raised ? "Lower hand" : "Raise hand";
  hand.setAttribute("aria-pressed", String(Boolean(me && me.hand_raised)));
  const muteSelf = $("mute-self");
  muteSelf.textContent = room.selfMuted ? "Unmute me" : "Mute me";
  muteSelf.setAttribute("aria-pressed", String(Boolean(room.selfMuted)));
  let speaking = "You are listening.";
  if (mayTalk()) {
    if (me && me.muted) speaking = "You may speak, but a moderator muted you.";
    else if (room.selfMuted) speaking = "You may speak, but you muted yourself.";
    else speaking = "You may speak: your microphone is on.";
  }
  $("speaking-state").textContent = speaking;

  for (const select of [$("target"), $("chat-to")]) {
    const current = select.value;
    // The menus offer whom the list shows (and whoever is chosen now, while here).
    const offered = room.roster.has(current) && !listed.includes(current) ? [...listed, current] : listed;
    const others = offered.filter((n) => n !== room.name);
    const first = select.id === "chat-to" ? [Object.assign(document.createElement("option"), { value: "", textContent: "Everyone" })] : [];
    const option = (n) => Object.assign(document.createElement("option"), { value: n, textContent: shown(n) === n ? n : `${shown(n)} (${n})` });
    select.replaceChildren(...first, ...others.map(option));
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }
  updateMicrophone();
}

function mayTalk() {
  const me = room.roster.get(room.name);
  if (!me) return false;
  return me.floor || room.mode === "open" || (room.mode === "lecture" && room.moderator);
}

// -- chat -------------------------------------------------------------------------------------

function showChat(message) {
  const li = document.createElement("li");
  li.append(nameLabel("strong", message.sender, message.sender_display_name || message.sender));
  if (message.to) {
    li.classList.add("private");
    li.append(` (privately to ${message.to === room.name ? "you" : shown(message.to)})`);
  }
  li.append(`: ${message.text}`);
  const log = $("chat-log");
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function sendChat(event) {
  event.preventDefault();
  const input = $("chat-text");
  const text = input.value.trim();
  if (!text) return;
  if (utf8Length(text) > CHAT_TEXT_MAX_BYTES) {
    problem("chat", `A message holds at most ${CHAT_TEXT_MAX_BYTES} bytes.`);
    return;
  }
  room.chatSeq = (room.chatSeq + 1) % 2 ** 32;
  const to = $("chat-to").value || null;
  if (!room.link || !room.link.send({ type: "SendChat", text, to, seq: room.chatSeq })) {
    problem("chat", "Not connected: the message was not sent.");
    return;
  }
  problem("chat", "");
  input.value = "";
}

// -- commands -----------------------------------------------------------------------------------

function command(message) {
  const sent = Boolean(room.link && room.link.send(message));
  if (!sent) problem("refused", "Not connected right now.");
  return sent;
}

const panels = createPanels({ send: command, problem, memoryKey: `townhall:event:${eventId}` });

function wireControls() {
  $("chat-form").addEventListener("submit", sendChat);
  $("hand").addEventListener("click", () => {
    const me = room.roster.get(room.name);
    command(me && me.hand_raised ? { type: "LowerHand", name: null } : { type: "RaiseHand" });
  });
  // Muting oneself is local: nothing leaves the microphone. A moderator's mute is the
  // server's (it drops the member's audio), and only a moderator lifts it.
  $("mute-self").addEventListener("click", () => {
    room.selfMuted = !room.selfMuted;
    render();
  });
  $("leave").addEventListener("click", () => leave());
  const target = () => $("target").value;
  $("give-floor").addEventListener("click", () => target() && command({ type: "GiveFloor", name: target() }));
  $("take-floor").addEventListener("click", () => command({ type: "TakeFloor" }));
  $("lower-hand").addEventListener("click", () => target() && command({ type: "LowerHand", name: target() }));
  $("mute-member").addEventListener("click", () => target() && command({ type: "Mute", name: target(), muted: true }));
  $("unmute-member").addEventListener("click", () => target() && command({ type: "Mute", name: target(), muted: false }));
  $("remove-member").addEventListener("click", () => {
    const name = target();
    if (name && confirm(`Remove ${name} from the event?`)) command({ type: "Remove", name });
  });
  $("pause-recording").addEventListener("click", () => {
    command({ type: "SetRecording", state: room.recording === "paused" ? "recording" : "paused" });
  });
  $("end-event").addEventListener("click", () => {
    if (confirm("End the event for everyone?")) command({ type: "EndEvent" });
  });
  $("share-camera").addEventListener("click", () => toggleVideo("camera"));
  $("share-screen").addEventListener("click", () => toggleVideo("screen"));
  $("microphone").addEventListener("change", () => restartMicrophone());
  window.addEventListener("pagehide", () => leave());
}

function showRecording(state) {
  room.recording = state;
  const badge = $("recording");
  badge.hidden = state === "off";
  badge.textContent = state === "paused" ? "Recording paused" : "● Recording";
  badge.className = state === "paused" ? "recording paused" : "recording";
  const button = $("pause-recording");
  button.hidden = state === "off";
  button.textContent = state === "paused" ? "Resume the recording" : "Pause the recording";
}

function leave() {
  if (room.leaving) return;
  room.leaving = true;
  stopSending();
  if (room.link) room.link.close("left");
  room.link = null;
  if (room.playout) room.playout.close();
  status("You left the event.");
  for (const el of document.querySelectorAll("main button, main select, main input")) el.disabled = true;
}

// -- media: streams, audio, video -------------------------------------------------------------

async function loadMedia() {
  const load = async (name) => {
    try {
      return await import(`./media/${name}.js`);
    } catch {
      return null;
    }
  };
  const [support, send, playout, videoSend, videoView, devices] = await Promise.all(
    ["support", "audio-send", "audio-playout", "video-send", "video-view", "devices"].map(load),
  );
  room.media = { support, send, playout, videoSend, videoView, devices };
  const check = support ? support.checkSupport() : { ok: false, missing: ["the media modules"] };
  if (!check.ok) {
    problem("support", `Audio and video cannot work here: this page lacks ${check.missing.join(", ")}. You can still chat and follow the event. Use Chrome or Edge 94 or newer, on an https:// page.`);
  }
  await refreshDevices();
}

// Before the page may use a device, browsers list none or without names; the lists are
// filled again once the microphone or the camera has started.
async function refreshDevices() {
  if (!room.media || !room.media.devices) return;
  try {
    const found = await room.media.devices.listDevices();
    fillDevices($("microphone"), found.microphones);
    fillDevices($("camera"), found.cameras);
  } catch (error) {
    problem("devices", `Cannot list your devices: ${error.message}`);
  }
}

function fillDevices(select, list) {
  const chosen = select.value;
  select.replaceChildren(
    Object.assign(document.createElement("option"), { value: "", textContent: "Default" }),
    ...list.map((d, i) => Object.assign(document.createElement("option"), { value: d.deviceId, textContent: d.label || `Device ${i + 1}` })),
  );
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

async function ensurePlayout() {
  if (room.playout || !room.media || !room.media.playout) return room.playout;
  try {
    room.playout = await room.media.playout.createPlayout();
  } catch (error) {
    problem("playout", `Cannot play audio: ${error.message}`);
  }
  return room.playout;
}

function streamStarted(info) {
  const known = room.streams.get(info.stream_id);
  room.streams.set(info.stream_id, info);
  if (info.owner === room.name) {
    const kind = info.kind || (info.codec === "opus" ? "microphone" : "camera");
    const sender = room.senders.get(kind);
    if (sender && sender.streamId === null) sender.streamId = info.stream_id;
    return;
  }
  if (!known && info.codec !== "opus") openView(info);
}

function streamEnded(id) {
  room.streams.delete(id);
  closeView(id);
  if (room.playout) room.playout.removeStream(id);
  for (const sender of room.senders.values()) if (sender.streamId === id) sender.streamId = null;
}

function onMedia(frame) {
  const info = room.streams.get(frame.streamId);
  if (!info) return;
  if (frame.channel === Channel.AUDIO) {
    for (const tap of audioTaps) tap(info.owner, frame.seq, frame.timestampUs, frame.data.slice());
    if (room.playout) room.playout.push(frame.streamId, frame.seq, frame.timestampUs, frame.data);
    else ensurePlayout();
  } else {
    const view = room.videos.get(frame.streamId);
    if (view && view.view) view.view.push(frame.seq, frame.timestampUs, frame.keyframe, frame.data);
  }
}

function openView(info) {
  if (!room.media || !room.media.videoView) return;
  const canvas = document.createElement("canvas");
  const kind = info.kind || "camera";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", kind === "screen" ? `${shown(info.owner)}'s shared screen` : `${shown(info.owner)}'s camera`);
  let holder = canvas;
  if (kind === "screen") {
    $("screen").replaceChildren(canvas);
  } else {
    holder = document.createElement("figure");
    holder.append(canvas, Object.assign(document.createElement("figcaption"), { textContent: shown(info.owner) }));
    $("tiles").append(holder);
  }
  let view = null;
  try {
    view = room.media.videoView.createVideoView(canvas, {
      codec: info.codec,
      onNeedKeyFrame: () => {
        if (room.link) room.link.send({ type: "RequestKeyFrame", stream_id: info.stream_id });
      },
    });
  } catch (error) {
    problem("video", `Cannot show ${shown(info.owner)}'s video: ${error.message}`);
  }
  room.videos.set(info.stream_id, { view, holder, info });
}

function closeView(id) {
  const entry = room.videos.get(id);
  if (!entry) return;
  room.videos.delete(id);
  if (entry.view) entry.view.close();
  entry.holder.remove();
}

function openStream(kind) {
  const sender = room.senders.get(kind);
  sender.streamId = null;
  if (room.link) room.link.send({ type: "OpenStream", codec: sender.codec, kind });
}

function sendFrame(kind, channel, data, timestampUs, keyframe = false) {
  const sender = room.senders.get(kind);
  if (!sender || sender.streamId === null || !room.link) return;
  const seq = room.mediaSeq.get(kind) || 0;
  room.mediaSeq.set(kind, (seq + 1) >>> 0);
  room.link.sendBytes(encodeMedia(channel, { streamId: sender.streamId, seq, timestampUs, keyframe, data }));
}

async function updateMicrophone() {
  const talk = mayTalk() && room.link && !room.ended;
  if (talk && !room.senders.has("microphone") && !room.startingMic && !room.micFailed) {
    if (!room.media || !room.media.send) return;
    room.startingMic = true;
    try {
      const mic = await room.media.send.startMicrophone({
        deviceId: $("microphone").value || undefined,
        onPacket: (packet, timestampUs) => sendFrame("microphone", Channel.AUDIO, packet, timestampUs),
      });
      room.senders.set("microphone", { codec: "opus", streamId: null, handle: mic });
      openStream("microphone");
      problem("microphone", "");
      refreshDevices();
    } catch (error) {
      room.micFailed = true; // not again at every roster change: choosing a microphone retries
      problem("microphone", microphoneProblem(error));
    } finally {
      room.startingMic = false;
    }
  } else if (!talk && room.senders.has("microphone")) {
    stopSender("microphone");
  }
  const mic = room.senders.get("microphone");
  const me = room.roster.get(room.name);
  if (mic && mic.handle.setMuted) mic.handle.setMuted(Boolean(room.selfMuted || (me && me.muted)));
}

function microphoneProblem(error) {
  if (error && error.name === "NotAllowedError") return "You refused the microphone: allow it in the browser's address bar to speak.";
  if (error && error.name === "NotFoundError") return "No microphone was found: you can listen, but not speak.";
  return `The microphone cannot start: ${error && error.message}`;
}

async function restartMicrophone() {
  room.micFailed = false;
  if (room.senders.has("microphone")) stopSender("microphone");
  await updateMicrophone();
}

function stopSender(kind) {
  const sender = room.senders.get(kind);
  if (!sender) return;
  room.senders.delete(kind);
  try {
    sender.handle.stop();
  } catch {
    // already stopped
  }
  if (sender.streamId !== null && room.link) room.link.send({ type: "CloseStream", stream_id: sender.streamId });
  const button = kind === "microphone" ? null : $(kind === "screen" ? "share-screen" : "share-camera");
  if (button) button.setAttribute("aria-pressed", "false");
}

function stopSending() {
  for (const kind of [...room.senders.keys()]) stopSender(kind);
}

async function toggleVideo(source) {
  const button = $(source === "screen" ? "share-screen" : "share-camera");
  if (room.senders.has(source)) {
    stopSender(source);
    return;
  }
  if (!room.media || !room.media.videoSend) {
    problem("video", "This browser cannot send video (WebCodecs is missing).");
    return;
  }
  try {
    const video = await room.media.videoSend.startVideo({
      source,
      deviceId: source === "camera" ? $("camera").value || undefined : undefined,
      onFrame: (data, timestampUs, isKey) => sendFrame(source, Channel.VIDEO, data, timestampUs, isKey),
    });
    room.senders.set(source, { codec: video.codec, streamId: null, handle: video });
    openStream(source);
    button.setAttribute("aria-pressed", "true");
    problem("video", "");
    refreshDevices();
  } catch (error) {
    const what = source === "screen" ? "screen sharing" : "the camera";
    if (error && error.name === "NotAllowedError") problem("video", `You refused ${what}: allow it in the browser to share.`);
    else if (error && error.name === "NotFoundError") problem("video", "No camera was found.");
    else problem("video", `Cannot start ${what}: ${error && error.message}`);
  }
}

// -- the speaking indicator -----------------------------------------------------------------------

function showSpeakers() {
  const speaking = new Set();
  if (room.playout && !room.ended) {
    const held = room.playout.stats().audioState === "suspended";
    problem("autoplay", held ? "The browser holds the sound until you click or press a key on this page." : "");
  }
  if (room.playout) {
    for (const [id, level] of room.playout.levels()) {
      const info = room.streams.get(id);
      if (info && level > 0.02) speaking.add(info.owner);
    }
  }
  const mic = room.senders.get("microphone");
  if (mic && mic.handle.level && mic.handle.level() > 0.02) speaking.add(room.name);
  for (const li of $("roster").children) li.classList.toggle("speaking", speaking.has(li.dataset.name));
}

// -- for tests: a read-only view of what the page shows ------------------------------------------

const audioTaps = [];

window.townhallRoom = {
  // A test measures what arrives (decoding it with its own AudioDecoder).
  tapAudio: (callback) => audioTaps.push(callback),
  snapshot: () => ({
    server: room.server,
    name: room.name,
    moderator: room.moderator,
    roster: [...room.roster.values()],
    attendance: room.everyoneListed ? room.roster.size : room.attendance,
    everyoneListed: room.everyoneListed,
    hands: [...room.hands],
    chat: room.chat.map((c) => ({ ...c })),
    ended: room.ended,
    rejoins: room.rejoins,
    streams: [...room.streams.values()],
    sending: [...room.senders.entries()].map(([kind, s]) => ({ kind, streamId: s.streamId })),
    skipped: { ...room.skipped },
    framesDecoded: Object.fromEntries([...room.videos].map(([id, v]) => [id, v.view ? v.view.framesDecoded : 0])),
    playout: room.playout ? room.playout.stats() : null,
    ...panels.snapshot(),
  }),
};

// -- start ------------------------------------------------------------------------------------------

async function start() {
  wireControls();
  $("back").href = `/events/${eventId}`;
  if (!eventId) {
    problem("ticket", "This is not an event's room address.");
    return;
  }
  await loadMedia(); // says at once what this browser lacks
  try {
    room.ticket = await fetchTicket();
  } catch (error) {
    problem("ticket", error.message);
    if (error.reason === "signin") {
      const a = Object.assign(document.createElement("a"), { href: `/login?next=${encodeURIComponent(location.pathname)}`, textContent: " Sign in" });
      $("problems").lastChild.append(a);
    }
    status("Not joined.");
    return;
  }
  room.title = room.ticket.title;
  render();
  status(`Finding the best of ${room.ticket.servers.length} live servers…`);
  try {
    await connect();
  } catch (error) {
    finish(error.reason, error.message);
    return;
  }
  document.addEventListener("click", () => ensurePlayout(), { once: true });
  ensurePlayout();
  setInterval(showSpeakers, 200);
}

start();
