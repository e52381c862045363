// media/video-view.js — decodes one received video stream (VP8 or H.264) with WebCodecs and
// draws it into a canvas. A decoder can only start at a key frame, so the view asks for one
// (onNeedKeyFrame) when it starts, after a gap in sequence numbers (its server dropped frames),
// and after a decoder error, and skips frames until the key frame comes.

const MAX_FRAME = 256 * 1024;       // the wire's VIDEO payload limit
const MAX_DECODE_QUEUE = 8;         // behind by this much: skip to the next key frame
const ASK_AGAIN_MS = 1000;          // while waiting, ask again at most this often

/**
 * @typedef {object} VideoView
 * @property {(seq: number, timestampMicros: number, isKey: boolean, data: Uint8Array) => void} push
 * @property {number} framesDecoded         frames decoded and drawn so far
 * @property {boolean} waitingForKeyFrame   true until a key frame has been decoded (after a gap too)
 * @property {() => object} stats
 * @property {() => void} close
 */

/**
 * @param {HTMLCanvasElement} canvas   resized to each decoded frame's size (style it with CSS)
 * @param {object} options
 * @param {'vp8' | 'h264'} options.codec                       what the sender said it sends
 * @param {() => void} [options.onNeedKeyFrame]                 send the owner a key-frame request
 * @param {(width: number, height: number) => void} [options.onResize]
 * @returns {VideoView}
 */
export function createVideoView(canvas, {codec, onNeedKeyFrame, onResize}) {
  const scope = /** @type {any} */ (globalThis);
  const codecString = codec === 'vp8' ? 'vp8' : codec === 'h264' ? 'avc1.42E01F' : null;
  if (!codecString) throw new TypeError("codec must be 'vp8' or 'h264'");
  const context = canvas.getContext('2d');
  if (!context) throw new Error('the canvas has no 2d context');

  let closed = false;
  let waitingForKey = true;
  let lastAskedAt = -Infinity;
  /** @type {number | null} */
  let lastSeq = null;
  /** @type {any} */
  let decoder = null;
  const counters = {
    framesReceived: 0, framesDecoded: 0, framesSkipped: 0, keyFramesAsked: 0,
    decodeErrors: 0, malformed: 0, width: 0, height: 0,
  };

  function askForKeyFrame() {
    const now = performance.now();
    if (now - lastAskedAt < ASK_AGAIN_MS) return;
    lastAskedAt = now;
    counters.keyFramesAsked += 1;
    if (onNeedKeyFrame) onNeedKeyFrame();
  }

  function newDecoder() {
    const made = new scope.VideoDecoder({
      output: (/** @type {any} */ frame) => {
        try {
          if (closed) return;
          const width = frame.displayWidth;
          const height = frame.displayHeight;
          if (canvas.width !== width || canvas.height !== height) {
            canvas.width = width;
            canvas.height = height;
            counters.width = width;
            counters.height = height;
            if (onResize) onResize(width, height);
          }
          context.drawImage(frame, 0, 0, width, height);
          counters.framesDecoded += 1;
        } finally {
          frame.close();
        }
      },
      error: () => {
        counters.decodeErrors += 1;
        if (decoder === made) decoder = null;
        if (!closed) {
          waitingForKey = true;
          askForKeyFrame();
        }
      },
    });
    // Annex B H.264 carries its parameter sets in the key frames: no description needed.
    made.configure({codec: codecString, optimizeForLatency: true});
    return made;
  }

  askForKeyFrame();

  return {
    push(seq, timestampMicros, isKey, data) {
      if (closed) return;
      if (!(data instanceof Uint8Array) || data.length === 0 || data.length > MAX_FRAME ||
          !Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) {
        counters.malformed += 1;
        return;
      }
      counters.framesReceived += 1;
      if (lastSeq !== null) {
        const delta = (seq - lastSeq) | 0;   // wrapping u32 arithmetic (RFC 1982)
        if (delta <= 0) {
          counters.framesSkipped += 1;       // duplicate or out of order: too late to show
          return;
        }
        if (delta > 1 && !isKey) waitingForKey = true;   // a frame it depends on is missing
      }
      lastSeq = seq;
      if (!decoder) decoder = newDecoder();
      if (!isKey && decoder.decodeQueueSize > MAX_DECODE_QUEUE) waitingForKey = true;
      if (waitingForKey && !isKey) {
        counters.framesSkipped += 1;
        askForKeyFrame();
        return;
      }
      waitingForKey = false;
      const chunk = new scope.EncodedVideoChunk({
        type: isKey ? 'key' : 'delta',
        timestamp: Math.max(0, Number(timestampMicros) || 0),
        data,
      });
      try {
        decoder.decode(chunk);
      } catch {
        counters.decodeErrors += 1;
        waitingForKey = true;
        askForKeyFrame();
      }
    },
    get framesDecoded() {
      return counters.framesDecoded;
    },
    get waitingForKeyFrame() {
      return waitingForKey;
    },
    stats: () => ({...counters, codec, waitingForKeyFrame: waitingForKey}),
    close() {
      closed = true;
      if (decoder && decoder.state !== 'closed') decoder.close();
      decoder = null;
    },
  };
}
