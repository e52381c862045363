// media/support.js — tells whether this browser has what the browser participant's media need
// (WebCodecs audio and video, AudioWorklet, MediaStreamTrackProcessor, a secure context), so
// the room page can say plainly what is missing instead of failing half-way.

/**
 * @returns {{ok: boolean, missing: string[]}} `missing` names each absent feature for the user.
 */
export function checkSupport() {
  /** @type {string[]} */
  const missing = [];
  const scope = /** @type {any} */ (globalThis);
  if (!scope.isSecureContext) missing.push('a secure (HTTPS) page');
  if (typeof scope.AudioEncoder !== 'function' || typeof scope.AudioDecoder !== 'function') {
    missing.push('WebCodecs audio (AudioEncoder, AudioDecoder)');
  }
  if (typeof scope.VideoEncoder !== 'function' || typeof scope.VideoDecoder !== 'function') {
    missing.push('WebCodecs video (VideoEncoder, VideoDecoder)');
  }
  if (typeof scope.AudioWorkletNode !== 'function') missing.push('AudioWorklet');
  if (typeof scope.MediaStreamTrackProcessor !== 'function') {
    missing.push('MediaStreamTrackProcessor');
  }
  if (!scope.navigator || !scope.navigator.mediaDevices) {
    missing.push('media devices (getUserMedia)');
  }
  return {ok: missing.length === 0, missing};
}
