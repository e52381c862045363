// media/video-send.js — captures the camera or a shared screen/window and encodes it with
// WebCodecs: VP8, or H.264 (Constrained Baseline, Annex B) where the browser cannot encode VP8.
// A key frame goes out every few seconds and whenever a viewer asks (requestKeyFrame). It hands
// out encoded frames only; the room frames them for the wire.

import {readFrames} from './frames.js';

const MAX_ENCODE_QUEUE = 2;  // a slow encoder drops camera frames rather than falling behind
const H264 = 'avc1.42E01F';

/**
 * @typedef {object} VideoSender
 * @property {() => void} stop
 * @property {() => void} requestKeyFrame   the next frame is encoded as a key frame
 * @property {MediaStreamTrack} track
 * @property {'vp8' | 'h264'} codec
 * @property {() => object} stats           frames sent, key frames, frames dropped, size
 */

/** Encoder settings for a source, before the first frame tells its real size. */
const PRESETS = {
  camera: {width: 640, height: 480, frameRate: 24, bitrate: 600_000},
  screen: {width: 1920, height: 1080, frameRate: 10, bitrate: 1_200_000},
};

/**
 * Pick the first codec of `codecs` the browser can encode (VP8, else H.264, by default).
 * @param {number} width @param {number} height @param {number} bitrate @param {number} frameRate
 * @param {Array<'vp8' | 'h264'>} [codecs]
 * @returns {Promise<{codec: 'vp8' | 'h264', config: any}>}
 */
export async function chooseVideoCodec(width, height, bitrate, frameRate, codecs = ['vp8', 'h264']) {
  const scope = /** @type {any} */ (globalThis);
  const base = {width, height, bitrate, framerate: frameRate, latencyMode: 'realtime'};
  for (const codec of codecs) {
    const config = codec === 'vp8' ? {...base, codec: 'vp8'}
      : codec === 'h264' ? {...base, codec: H264, avc: {format: 'annexb'}} : null;
    if (config && (await scope.VideoEncoder.isConfigSupported(config)).supported) {
      return {codec, config};
    }
  }
  throw new DOMException(`This browser can encode none of: ${codecs.join(', ')}`, 'NotSupportedError');
}

/**
 * Start sending the camera or a screen.
 *
 * @param {object} options
 * @param {'camera' | 'screen'} options.source
 * @param {string} [options.deviceId]   camera from listDevices(); ignored for a screen
 * @param {(data: Uint8Array, timestampMicros: number, isKey: boolean) => void} options.onFrame
 * @param {MediaStreamTrack} [options.track] send this video track instead of asking for one
 *        (a canvas's captureStream(), say); it is stopped with the sender
 * @param {number} [options.keyFrameSeconds=3] period of the unrequested key frames
 * @param {Array<'vp8' | 'h264'>} [options.codecs] codecs to try, in order; VP8 then H.264
 * @param {() => void} [options.onEnded] the user stopped sharing, or the camera went away
 * @param {(error: Error) => void} [options.onError] encoding failed; sending has stopped
 * @returns {Promise<VideoSender>} rejects with the getUserMedia/getDisplayMedia error
 */
export async function startVideo({
  source, deviceId, onFrame, track: givenTrack, keyFrameSeconds = 3, codecs, onEnded, onError,
}) {
  const scope = /** @type {any} */ (globalThis);
  if (source !== 'camera' && source !== 'screen') {
    throw new TypeError("source must be 'camera' or 'screen'");
  }
  const preset = PRESETS[source];
  let track = givenTrack;
  if (!track) {
    if (source === 'camera') {
      /** @type {MediaTrackConstraints} */
      const video = {
        width: {ideal: preset.width}, height: {ideal: preset.height},
        frameRate: {ideal: preset.frameRate},
      };
      if (deviceId) video.deviceId = {exact: deviceId};
      track = (await navigator.mediaDevices.getUserMedia({video})).getVideoTracks()[0];
    } else {
      const stream = await navigator.mediaDevices.getDisplayMedia({
        video: {frameRate: {ideal: preset.frameRate, max: 15}}, audio: false,
      });
      track = stream.getVideoTracks()[0];
    }
  }
  const videoTrack = /** @type {MediaStreamTrack} */ (track);
  const settings = videoTrack.getSettings();
  const chosen = await chooseVideoCodec(
    even(settings.width || preset.width), even(settings.height || preset.height),
    preset.bitrate, preset.frameRate, codecs);

  let stopped = false;
  let keyWanted = true;
  let lastKeyMicros = -Infinity;
  /** @type {{width: number, height: number} | null} */
  let configuredSize = null;
  const counters = {framesSent: 0, keyFramesSent: 0, framesDropped: 0, bytesSent: 0, width: 0, height: 0};

  const encoder = new scope.VideoEncoder({
    output: (/** @type {any} */ chunk) => {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      const isKey = chunk.type === 'key';
      counters.framesSent += 1;
      counters.bytesSent += data.length;
      if (isKey) counters.keyFramesSent += 1;
      onFrame(data, chunk.timestamp, isKey);
    },
    error: (/** @type {Error} */ error) => fail(error),
  });

  /** @param {any} frame a VideoFrame */
  function encode(frame) {
    const width = even(frame.displayWidth);
    const height = even(frame.displayHeight);
    if (width < 2 || height < 2) return;
    if (!configuredSize || configuredSize.width !== width || configuredSize.height !== height) {
      // A window being shared can change size: configure again, starting with a key frame.
      encoder.configure({...chosen.config, width, height});
      configuredSize = {width, height};
      counters.width = width;
      counters.height = height;
      keyWanted = true;
    }
    if (encoder.encodeQueueSize > MAX_ENCODE_QUEUE) {
      counters.framesDropped += 1;
      return;
    }
    const timestamp = frame.timestamp;
    const keyFrame = keyWanted || timestamp - lastKeyMicros >= keyFrameSeconds * 1e6;
    if (keyFrame) {
      keyWanted = false;
      lastKeyMicros = timestamp;
    }
    encoder.encode(frame, {keyFrame});
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
    videoTrack.stop();
  }

  videoTrack.addEventListener('ended', () => {
    if (stopped) return;
    stop();
    if (onEnded) onEnded();
  });

  const frames = readFrames(videoTrack, {
    onFrame: encode,
    onError: fail,
  });
  return {
    stop,
    requestKeyFrame() {
      keyWanted = true;
    },
    track: videoTrack,
    codec: chosen.codec,
    stats: () => ({...counters, codec: chosen.codec}),
  };
}

/** Codecs want even sizes (4:2:0 chroma). @param {number} n */
function even(n) {
  return Math.max(0, Math.floor(n / 2) * 2);
}
