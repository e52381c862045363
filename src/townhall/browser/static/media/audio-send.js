// media/audio-send.js — captures the chosen microphone and encodes it with WebCodecs into Opus
// packets (48 kHz, mono, one packet per 20 ms) handed to the caller. It knows nothing of the
// wire: framing, stream ids and sequence numbers belong to the room (wire.js).

import {readFrames} from './frames.js';

const SAMPLE_RATE = 48000;
const FRAME_MICROS = 20000;
const OPUS_BITRATE = 32000;
// Past this many AudioData waiting in the encoder, capture outruns encoding: drop, don't queue.
const MAX_ENCODE_QUEUE = 8;

/**
 * @typedef {object} Microphone
 * @property {() => void} stop                  releases the device and the encoder
 * @property {(muted: boolean) => void} setMuted while muted nothing is captured or sent
 * @property {MediaStreamTrack} track           the captured track (for a device label, say)
 * @property {() => number} level               recent loudness 0..1 (0 while muted), on the
 *           60 dB scale of toLevel()
 * @property {() => object} stats               packets sent, frames dropped, encoder errors
 */

/**
 * Open the microphone and start sending Opus packets.
 *
 * @param {object} options
 * @param {string} [options.deviceId]   from listDevices(); the default microphone when absent
 * @param {(packet: Uint8Array, timestampMicros: number) => void} options.onPacket
 *        one Opus packet (20 ms) and its capture time in microseconds on this page's media clock
 * @param {boolean} [options.processing=true] echo cancellation, noise suppression, gain control
 * @param {(error: Error) => void} [options.onError] encoding failed; capture has stopped
 * @param {(samples: Float32Array, capturedAt: number) => void} [options.onCapture]
 *        for measurements only: each captured block of mono samples and performance.now()
 * @returns {Promise<Microphone>} rejects with the getUserMedia error (NotAllowedError,
 *        NotFoundError, ...) so the page can tell the user what went wrong
 */
export async function startMicrophone({
  deviceId, onPacket, processing = true, onError, onCapture,
}) {
  const scope = /** @type {any} */ (globalThis);
  /** @type {MediaTrackConstraints} */
  const constraints = {
    echoCancellation: processing,
    noiseSuppression: processing,
    autoGainControl: processing,
    channelCount: {ideal: 1},
    sampleRate: {ideal: SAMPLE_RATE},
  };
  if (deviceId) constraints.deviceId = {exact: deviceId};
  const stream = await navigator.mediaDevices.getUserMedia({audio: constraints});
  const track = stream.getAudioTracks()[0];

  /** @type {AudioContext | null} */
  let resampler = null;
  let sourceTrack = track;
  if (track.getSettings().sampleRate !== SAMPLE_RATE) {
    // The encoder wants 48 kHz; an AudioContext at 48 kHz converts whatever the device gives.
    resampler = new AudioContext({sampleRate: SAMPLE_RATE});
    const destination = resampler.createMediaStreamDestination();
    resampler.createMediaStreamSource(stream).connect(destination);
    sourceTrack = destination.stream.getAudioTracks()[0];
  }

  let muted = false;
  let stopped = false;
  let loudness = 0;
  const counters = {packetsSent: 0, framesDropped: 0, encoderErrors: 0};

  const encoder = new scope.AudioEncoder({
    output: (/** @type {any} */ chunk) => {
      const packet = new Uint8Array(chunk.byteLength);
      chunk.copyTo(packet);
      counters.packetsSent += 1;
      onPacket(packet, chunk.timestamp);
    },
    error: (/** @type {Error} */ error) => {
      counters.encoderErrors += 1;
      fail(error);
    },
  });
  encoder.configure({
    codec: 'opus',
    sampleRate: SAMPLE_RATE,
    numberOfChannels: 1,
    bitrate: OPUS_BITRATE,
    opus: {frameDuration: FRAME_MICROS, complexity: 5},
  });

  /** @param {any} data an AudioData from the track */
  function handle(data) {
    if (muted) {
      loudness = 0;
      return;
    }
    const samples = new Float32Array(data.numberOfFrames);
    data.copyTo(samples, {planeIndex: 0, format: 'f32-planar'});
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    loudness = Math.max(toLevel(Math.sqrt(sum / Math.max(1, samples.length))), loudness * 0.8);
    if (onCapture) onCapture(samples, performance.now());
    if (encoder.state !== 'configured' || encoder.encodeQueueSize > MAX_ENCODE_QUEUE) {
      counters.framesDropped += 1;
      return;
    }
    // The encoder takes mono 48 kHz only: hand it channel 0 as its own AudioData.
    const mono = new scope.AudioData({
      format: 'f32-planar',
      sampleRate: data.sampleRate,
      numberOfFrames: data.numberOfFrames,
      numberOfChannels: 1,
      timestamp: data.timestamp,
      data: samples,
    });
    try {
      encoder.encode(mono);
    } finally {
      mono.close();
    }
  }

  /** @param {Error} error */
  function fail(error) {
    if (stopped) return;
    stop();
    if (onError) onError(error);
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    frames.cancel();
    if (encoder.state !== 'closed') encoder.close();
    for (const each of stream.getTracks()) each.stop();
    if (sourceTrack !== track) sourceTrack.stop();
    if (resampler) resampler.close().catch(() => {});
  }

  const frames = readFrames(sourceTrack, {
    onFrame: handle,
    onError: fail,
  });
  return {
    stop,
    setMuted(value) {
      muted = Boolean(value);
      // A disabled track also turns off the browser's "microphone in use" capture of sound.
      track.enabled = !muted;
      if (muted) loudness = 0;
    },
    track,
    level: () => (muted ? 0 : loudness),
    stats: () => ({...counters, muted, codec: 'opus', sampleRate: SAMPLE_RATE}),
  };
}

/**
 * Map an RMS amplitude to 0..1 on a 60 dB scale (-60 dBFS and below is 0).
 * @param {number} rms
 */
export function toLevel(rms) {
  if (rms <= 0) return 0;
  const db = 20 * Math.log10(rms);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}
