// media/frames.js — reads a captured track's raw frames (AudioData or VideoFrame) through a
// MediaStreamTrackProcessor and hands each to the caller, closing it afterwards: the one read
// loop that the microphone (audio-send.js) and the camera or screen (video-send.js) share.

/**
 * @param {MediaStreamTrack} track
 * @param {{onFrame: (frame: any) => void, onError: (error: Error) => void}} handlers
 *        onFrame gets each frame, which is closed here once it returns; if it throws, reading
 *        stops and the error goes to onError
 * @returns {{cancel: () => void}} stops reading (stopping the track is the caller's)
 */
export function readFrames(track, {onFrame, onError}) {
  const scope = /** @type {any} */ (globalThis);
  const reader = new scope.MediaStreamTrackProcessor({track}).readable.getReader();
  let cancelled = false;
  const cancel = () => {
    if (cancelled) return;
    cancelled = true;
    reader.cancel().catch(() => {});
  };

  (async () => {
    for (;;) {
      let result;
      try {
        result = await reader.read();
      } catch {
        return;
      }
      if (result.done || cancelled) {
        if (result.value) result.value.close();
        return;
      }
      const frame = result.value;
      try {
        onFrame(frame);
      } catch (error) {
        cancel();
        onError(/** @type {Error} */ (error));
        return;
      } finally {
        frame.close();
      }
    }
  })();
  return {cancel};
}
