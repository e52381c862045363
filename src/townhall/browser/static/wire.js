// The live protocol (townhall/1) in the browser: frames, the media header, messages.
//
// The same bytes as townhall.wire (docs/protocol.md): an 8-byte frame header, then a
// msgpack array of the message's fields in order (CONTROL, DATA) or a 16-byte media
// header and codec data (AUDIO, VIDEO). One WebSocket binary message carries one
// frame. This module knows nothing of sockets, pages or media devices; room.js
// drives it. msgpack itself is the vendored @msgpack/msgpack (vendor/msgpack/).

import { Encoder, Decoder } from "./vendor/msgpack/index.mjs";

export const FRAME_VERSION = 1;
export const HEADER_SIZE = 8;
export const MEDIA_HEADER_SIZE = 16;
export const KEYFRAME = 0x01;
export const PROTOCOL_VERSION = 2;
export const Channel = Object.freeze({ CONTROL: 0, AUDIO: 1, VIDEO: 2, DATA: 3 });
export const MAX_PAYLOAD = Object.freeze([64 * 1024, 8 * 1024, 256 * 1024, 64 * 1024]);
export const CHAT_TEXT_MAX_BYTES = 4096;

export class ProtocolError extends Error {}

// Records nested in messages: [field, default] in wire order.
const LOAD = [["participants"], ["capacity"]];
const MEMBER = [["name"], ["moderator", false], ["hand_raised", false], ["floor", false], ["muted", false], ["display_name", ""]];
const STREAM_INFO = [["stream_id"], ["owner"], ["codec"], ["kind", null]];
const POLL = [["poll_id"], ["question"], ["options"], ["multiple"], ["state"], ["shared"], ["counts", null], ["voters", null]];
const STREAM_DROPS = [["stream_id"], ["frames"]];
const QUESTION = [["question_id"], ["text"], ["asker"], ["anonymous"], ["votes"], ["state"], ["answer", ""]];

const record = (fields) => ({ record: fields });
const listOf = (fields) => ({ list: fields });

// name: [channel, type, fields]; a field is [name, default?, shape?]. A field without
// a default is required. Python (msgspec) writes every field, defaults included, and
// so does this table, so both sides produce the very same bytes.
const MESSAGES = {
  Hello: [0, 1, [["role"], ["version"], ["client"]]],
  Welcome: [0, 2, [["version"], ["server"]]],
  Auth: [0, 3, [["ticket"]]],
  AuthOk: [0, 4, [["name"], ["event", null], ["moderator", false], ["display_name", ""]]],
  AuthFailed: [0, 5, [["reason"], ["message", ""]]],
  Error: [0, 6, [["code"], ["message", ""]]],
  Ping: [0, 7, [["nonce"]]],
  Pong: [0, 8, [["nonce"], ["load", null, record(LOAD)]]],
  Bye: [0, 9, [["reason"], ["message", ""]]],
  RaiseHand: [0, 16, []],
  LowerHand: [0, 17, [["name", null]]],
  GiveFloor: [0, 18, [["name"]]],
  TakeFloor: [0, 19, []],
  Mute: [0, 20, [["name"], ["muted", true]]],
  Remove: [0, 21, [["name"]]],
  SetSpeakingMode: [0, 22, [["mode"]]],
  EndEvent: [0, 23, []],
  OpenStream: [0, 24, [["codec"], ["kind", null]]],
  CloseStream: [0, 25, [["stream_id"]]],
  StreamOpened: [0, 26, [["stream", undefined, record(STREAM_INFO)]]],
  StreamClosed: [0, 27, [["stream_id"]]],
  RequestKeyFrame: [0, 28, [["stream_id"]]],
  MediaDropped: [0, 29, [["audio_frames"], ["video_frames"], ["streams", [], listOf(STREAM_DROPS)]]],
  StateSnapshot: [0, 32, [["event"], ["title"], ["mode"], ["attendance"], ["streams", [], listOf(STREAM_INFO)]]],
  RosterUpdate: [0, 33, [["changed", [], listOf(MEMBER)], ["left", []]]],
  UpstreamChanged: [0, 34, [["reachable"]]],
  RosterView: [0, 35, [["full"], ["members"]]],
  AttendanceChanged: [0, 36, [["members"]]],
  CreatePoll: [0, 64, [["question"], ["options"], ["multiple", false], ["shared", false]]],
  OpenPoll: [0, 65, [["poll_id"]]],
  ClosePoll: [0, 66, [["poll_id"]]],
  SharePollResults: [0, 67, [["poll_id"], ["shared", true]]],
  Vote: [0, 68, [["poll_id"], ["choices"]]],
  PollUpdated: [0, 69, [["poll", undefined, record(POLL)]]],
  AskQuestion: [0, 72, [["text"], ["anonymous", false]]],
  UpvoteQuestion: [0, 73, [["question_id"]]],
  SettleQuestion: [0, 74, [["question_id"], ["state"], ["answer", ""]]],
  QuestionUpdated: [0, 75, [["question", undefined, record(QUESTION)]]],
  SetRecording: [0, 56, [["state"]]],
  RecordingChanged: [0, 57, [["state"]]],
  SendChat: [3, 1, [["text"], ["to", null], ["seq", 0]]],
  ChatPosted: [3, 2, [["sender"], ["text"], ["to", null], ["seq", 0], ["sender_display_name", ""]]],
};

const BY_ADDRESS = new Map(Object.entries(MESSAGES).map(([name, [channel, type]]) => [channel * 256 + type, name]));

const encoder = new Encoder({ useBigInt64: true });
const decoder = new Decoder({ useBigInt64: true, maxStrLength: 64 * 1024, maxBinLength: 64 * 1024, maxArrayLength: 256, maxMapLength: 0, maxExtLength: 0 });

function toArray(fields, value) {
  return fields.map(([name, fallback, shape]) => {
    let v = value[name];
    if (v === undefined) {
      if (fallback === undefined) throw new ProtocolError(`missing field ${name}`);
      v = fallback;
    }
    if (shape && v !== null) {
      if (shape.record) v = toArray(shape.record, v);
      else if (shape.list) v = v.map((item) => toArray(shape.list, item));
    }
    return v;
  });
}

function fromArray(fields, array, what) {
  if (!Array.isArray(array) || array.length > fields.length) throw new ProtocolError(`bad ${what}`);
  const out = {};
  fields.forEach(([name, fallback, shape], i) => {
    let v = i < array.length ? array[i] : fallback;
    if (v === undefined) throw new ProtocolError(`${what}: missing ${name}`);
    if (shape && v !== null) {
      if (shape.record) v = fromArray(shape.record, v, name);
      else if (shape.list) {
        if (!Array.isArray(v)) throw new ProtocolError(`${what}: ${name} is not a list`);
        v = v.map((item) => fromArray(shape.list, item, name));
      }
    }
    out[name] = v;
  });
  return out;
}

function header(channel, type, flags, length) {
  const frame = new Uint8Array(HEADER_SIZE + length);
  const view = new DataView(frame.buffer);
  view.setUint8(0, FRAME_VERSION);
  view.setUint8(1, channel);
  view.setUint8(2, type);
  view.setUint8(3, flags);
  view.setUint32(4, length);
  return frame;
}

/** One message, {type: "SendChat", text: ...}, as one frame's bytes. */
export function encodeMessage(message) {
  const spec = MESSAGES[message.type];
  if (!spec) throw new ProtocolError(`unknown message ${message.type}`);
  const [channel, type, fields] = spec;
  const payload = encoder.encode(toArray(fields, message));
  if (payload.length > MAX_PAYLOAD[channel]) throw new ProtocolError(`${message.type} too large`);
  const frame = header(channel, type, 0, payload.length);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** One media frame: stream id and seq are u32, the timestamp microseconds. */
export function encodeMedia(channel, { streamId, seq, timestampUs, keyframe = false, data }) {
  if (channel !== Channel.AUDIO && channel !== Channel.VIDEO) throw new ProtocolError("media goes on AUDIO or VIDEO");
  const length = MEDIA_HEADER_SIZE + data.length;
  if (data.length < 1 || length > MAX_PAYLOAD[channel]) throw new ProtocolError(`media of ${data.length} bytes`);
  const frame = header(channel, 0, keyframe && channel === Channel.VIDEO ? KEYFRAME : 0, length);
  const view = new DataView(frame.buffer);
  view.setUint32(8, streamId >>> 0);
  view.setUint32(12, seq >>> 0);
  view.setBigUint64(16, BigInt(Math.max(0, Math.floor(timestampUs))));
  frame.set(data, HEADER_SIZE + MEDIA_HEADER_SIZE);
  return frame;
}

/**
 * One frame's bytes (one WebSocket message) to {type, ...fields} or, for media,
 * {type: "Media", channel, streamId, seq, timestampUs, keyframe, data}. Throws
 * ProtocolError for anything docs/protocol.md does not allow.
 */
export function decodeFrame(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (bytes.length < HEADER_SIZE) throw new ProtocolError("short frame");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [version, channel, type, flags] = [0, 1, 2, 3].map((i) => view.getUint8(i));
  const length = view.getUint32(4);
  if (version !== FRAME_VERSION) throw new ProtocolError(`frame version ${version}`);
  if (channel > 3) throw new ProtocolError(`unknown channel ${channel}`);
  if (length > MAX_PAYLOAD[channel] || length !== bytes.length - HEADER_SIZE) throw new ProtocolError("bad frame length");
  if (flags & ~(channel === Channel.VIDEO ? KEYFRAME : 0)) throw new ProtocolError("bad flags");
  if (channel === Channel.AUDIO || channel === Channel.VIDEO) {
    if (type !== 0 || length <= MEDIA_HEADER_SIZE) throw new ProtocolError("bad media frame");
    return {
      type: "Media",
      channel,
      streamId: view.getUint32(8),
      seq: view.getUint32(12),
      timestampUs: Number(view.getBigUint64(16)),
      keyframe: Boolean(flags & KEYFRAME),
      data: bytes.subarray(HEADER_SIZE + MEDIA_HEADER_SIZE),
    };
  }
  const name = BY_ADDRESS.get(channel * 256 + type);
  if (!name) throw new ProtocolError(`unknown message ${channel}/${type}`);
  let array;
  try {
    array = decoder.decode(bytes.subarray(HEADER_SIZE));
  } catch (error) {
    throw new ProtocolError(`bad ${name}: ${error.message}`);
  }
  return { type: name, ...fromArray(MESSAGES[name][2], array, name) };
}

/** Serial number arithmetic on u32 sequence numbers (RFC 1982 §3), as frames.seq_delta. */
export function seqDelta(earlier, later) {
  return ((((later - earlier + 0x80000000) >>> 0) & 0xffffffff) >>> 0) - 0x80000000;
}

/** UTF-8 length of a chat text, which the server bounds at 4096 bytes. */
export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}
