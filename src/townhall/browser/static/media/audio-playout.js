// media/audio-playout.js — plays the audio streams a participant receives: one WebCodecs Opus
// decoder per stream on this thread, and the jitter buffers, loss concealment, clock-drift
// following and mixing in an AudioWorklet (playout-worklet.js, which describes them). The
// room hands in codec payloads with their stream id and sequence number; it sees levels back.

const STREAM_RATE = 48000;
const MAX_PACKET = 8 * 1024;        // the wire's AUDIO payload limit
const MAX_CONCEALED_GAP = 10;       // a longer gap is a pause (muted sender), not a loss
const JITTER_WINDOW = 250;          // packets (5 s) over which arrival jitter is measured
const PAUSE_MS = 400;               // arrivals this much later than their sequence says: a pause
const MAX_PENDING_DECODES = 25;

/**
 * @typedef {object} Playout
 * @property {(streamId: number, seq: number, timestampMicros: number, packet: Uint8Array) => void} push
 *           one received Opus packet; late, duplicate or malformed packets are counted and dropped
 * @property {(streamId: number) => void} removeStream
 * @property {() => Map<number, number>} levels   loudness of each stream as played, on a 60 dB
 *           scale: 0 at -60 dBFS and below, 1 at full scale; speech is mostly 0.4-0.8, so about
 *           0.3 tells speaking from background noise
 * @property {() => object} stats                 audioState ('suspended' until the user acts on a
 *           page whose autoplay is blocked), and per stream: buffered/target ms, jitter, losses...
 * @property {AudioNode} output                   the mixed output (already connected to the
 *           speakers); connect it to an AnalyserNode or a recorder to look at what is played
 * @property {AudioContext} audioContext
 * @property {() => Promise<void>} close
 */

/**
 * @param {{audioContext?: AudioContext}} [options] a context of the page's own, or a new one at
 *        48 kHz with interactive latency; it is resumed here, or at the user's first gesture
 *        on the page if the browser's autoplay policy needs one
 * @returns {Promise<Playout>}
 */
export async function createPlayout({audioContext} = {}) {
  const scope = /** @type {any} */ (globalThis);
  const context = audioContext || new AudioContext({sampleRate: STREAM_RATE, latencyHint: 'interactive'});
  const ownContext = !audioContext;
  await context.audioWorklet.addModule(new URL('./playout-worklet.js', import.meta.url));
  const node = new AudioWorkletNode(context, 'townhall-playout', {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
  });
  node.connect(context.destination);
  // Not awaited: while autoplay is blocked, resume() stays pending until the user acts. The
  // context then resumes at the user's first gesture (stats().audioState tells the room).
  const gestures = ['pointerdown', 'keydown', 'touchend'];
  const resumeOnGesture = () => {
    context.resume().then(() => {
      if (context.state === 'running') {
        for (const name of gestures) document.removeEventListener(name, resumeOnGesture, true);
      }
    }).catch(() => {});
  };
  context.resume().catch(() => {});
  if (context.state !== 'running' && typeof document !== 'undefined') {
    for (const name of gestures) document.addEventListener(name, resumeOnGesture, true);
  }

  /** @type {Map<number, number>} */
  let levels = new Map();
  /** @type {any[]} */
  let workletStreams = [];
  node.port.onmessage = (event) => {
    const message = event.data;
    if (message && message.type === 'report') {
      levels = new Map(message.levels);
      workletStreams = message.streams;
    }
  };

  /**
   * @typedef {object} Receiver
   * @property {any} decoder
   * @property {number | null} lastSeq
   * @property {number[]} pendingLoss  frames lost before each packet in the decoder, in order
   * @property {number[]} delays       arrival time minus nominal send time, ms (ring)
   * @property {number[]} indices      packets since firstSeq, for each delay (ring)
   * @property {number} delayCount
   * @property {number} lastArrival
   * @property {number} lastIndex
   * @property {number} driftPpm       how much faster the receiver's clock runs (estimate)
   * @property {number} firstSeq
   * @property {{packets: number, lost: number, late: number, malformed: number, decodeErrors: number}} counts
   */
  /** @type {Map<number, Receiver>} */
  const receivers = new Map();
  let closed = false;

  /** @param {number} streamId @param {Receiver} receiver */
  function makeDecoder(streamId, receiver) {
    const decoder = new scope.AudioDecoder({
      output: (/** @type {any} */ data) => {
        const lostBefore = receiver.pendingLoss.shift() || 0;
        try {
          if (closed || receivers.get(streamId) !== receiver) return;
          const samples = new Float32Array(data.numberOfFrames);
          data.copyTo(samples, {planeIndex: 0, format: 'f32-planar'});
          node.port.postMessage({type: 'frame', id: streamId, samples, lostBefore}, [samples.buffer]);
        } finally {
          data.close();
        }
      },
      error: () => {
        receiver.counts.decodeErrors += 1;
        receiver.pendingLoss = [];
        // A broken packet closes a WebCodecs decoder: start a new one at the next packet.
        receiver.decoder = null;
      },
    });
    decoder.configure({codec: 'opus', sampleRate: STREAM_RATE, numberOfChannels: 1});
    return decoder;
  }

  /** @param {Receiver} receiver @param {number} streamId @param {number} seq */
  function measureJitter(receiver, streamId, seq) {
    // Each packet's delay relative to its nominal send time (20 ms per sequence number). The
    // spread of these delays is the jitter the buffer must absorb, once the straight line
    // that the two clocks' drift draws through them is taken out (drift is followed apart).
    const now = performance.now();
    let index = (seq - receiver.firstSeq) >>> 0;
    if (receiver.delayCount > 0 && now - receiver.lastArrival > PAUSE_MS &&
        (index - receiver.lastIndex) * 20 < now - receiver.lastArrival - PAUSE_MS) {
      // The sender stopped sending for a while (muted): its pause is not network jitter.
      receiver.firstSeq = seq;
      receiver.delayCount = 0;
      index = 0;
    }
    receiver.lastArrival = now;
    receiver.lastIndex = index;
    const slot = receiver.delayCount % JITTER_WINDOW;
    receiver.indices[slot] = index;
    receiver.delays[slot] = now - index * 20;
    receiver.delayCount += 1;
    const count = Math.min(receiver.delayCount, JITTER_WINDOW);
    if (receiver.delayCount % 10 !== 0 || count < 20) return;
    let meanX = 0;
    let meanY = 0;
    for (let i = 0; i < count; i++) {
      meanX += receiver.indices[i];
      meanY += receiver.delays[i];
    }
    meanX /= count;
    meanY /= count;
    let covariance = 0;
    let variance = 0;
    for (let i = 0; i < count; i++) {
      covariance += (receiver.indices[i] - meanX) * (receiver.delays[i] - meanY);
      variance += (receiver.indices[i] - meanX) ** 2;
    }
    const slope = variance > 0 ? covariance / variance : 0;
    const residuals = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      residuals[i] = receiver.delays[i] - (meanY + slope * (receiver.indices[i] - meanX));
    }
    residuals.sort();
    const spread = residuals[Math.floor(0.95 * (count - 1))] - residuals[0];
    receiver.driftPpm = Math.round((slope / 20) * 1e6);
    node.port.postMessage({type: 'jitter', id: streamId, ms: spread});
  }

  return {
    push(streamId, seq, timestampMicros, packet) {
      if (closed) return;
      if (!Number.isInteger(streamId) || streamId < 0 || !Number.isInteger(seq) || seq < 0 ||
          seq > 0xffffffff || !(packet instanceof Uint8Array)) {
        throw new TypeError('push(streamId, seq, timestampMicros, Uint8Array packet)');
      }
      let receiver = receivers.get(streamId);
      if (!receiver) {
        receiver = {
          decoder: null, lastSeq: null, pendingLoss: [], delays: [], indices: [], delayCount: 0,
          lastArrival: 0, lastIndex: 0, driftPpm: 0,
          firstSeq: seq, counts: {packets: 0, lost: 0, late: 0, malformed: 0, decodeErrors: 0},
        };
        receivers.set(streamId, receiver);
      }
      if (packet.length === 0 || packet.length > MAX_PACKET) {
        receiver.counts.malformed += 1;
        return;
      }
      let lostBefore = 0;
      if (receiver.lastSeq !== null) {
        const delta = (seq - receiver.lastSeq) | 0;   // wrapping u32 arithmetic (RFC 1982)
        if (delta <= 0 && delta > -MAX_CONCEALED_GAP * 5) {
          receiver.counts.late += 1;                 // duplicate or reordered: already concealed
          return;
        }
        if (delta > 1 && delta <= MAX_CONCEALED_GAP) lostBefore = delta - 1;
        if (delta > 1) receiver.counts.lost += delta - 1;
        if (delta < 0 || delta > MAX_CONCEALED_GAP * 5) {
          // The sender started again (a new stream under the same id): measure afresh.
          receiver.firstSeq = seq;
          receiver.delayCount = 0;
        }
      }
      receiver.lastSeq = seq;
      receiver.counts.packets += 1;
      measureJitter(receiver, streamId, seq);
      if (!receiver.decoder) receiver.decoder = makeDecoder(streamId, receiver);
      if (receiver.decoder.decodeQueueSize > MAX_PENDING_DECODES) {
        receiver.counts.late += 1;
        return;
      }
      receiver.pendingLoss.push(lostBefore);
      const chunk = new scope.EncodedAudioChunk({
        type: 'key', timestamp: Math.max(0, Number(timestampMicros) || 0), data: packet,
      });
      try {
        receiver.decoder.decode(chunk);
      } catch {
        receiver.pendingLoss.pop();
        receiver.counts.decodeErrors += 1;
      }
    },

    removeStream(streamId) {
      const receiver = receivers.get(streamId);
      if (receiver && receiver.decoder && receiver.decoder.state !== 'closed') {
        receiver.decoder.close();
      }
      receivers.delete(streamId);
      levels.delete(streamId);
      node.port.postMessage({type: 'remove', id: streamId});
    },

    levels: () => new Map(levels),

    stats() {
      // Streams whose packets have not (yet) given audio are only known on this side.
      const played = new Map(workletStreams.map((each) => [each.id, each]));
      const streams = [...receivers].map(([id, receiver]) => ({
        id, playing: false, ...played.get(id), ...receiver.counts, driftPpm: receiver.driftPpm,
      }));
      return {
        audioState: context.state,
        sampleRate: context.sampleRate,
        outputLatencyMs: 1000 * ((context.baseLatency || 0) + (context.outputLatency || 0)),
        streams,
      };
    },

    output: node,
    audioContext: context,

    async close() {
      if (closed) return;
      closed = true;
      for (const receiver of receivers.values()) {
        if (receiver.decoder && receiver.decoder.state !== 'closed') receiver.decoder.close();
      }
      receivers.clear();
      node.port.onmessage = null;
      node.disconnect();
      if (typeof document !== 'undefined') {
        for (const name of gestures) document.removeEventListener(name, resumeOnGesture, true);
      }
      if (ownContext) await context.close();
    },
  };
}
