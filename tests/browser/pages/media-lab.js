// Test-page helpers for the media modules (tests/browser/test_media_*.py): they wire the real
// modules together in one page, with no server, and keep what the tests read on
// window.townhallTest. Nothing here is shipped.

import {startMicrophone} from '/static/media/audio-send.js';
import {createPlayout} from '/static/media/audio-playout.js';
import {startVideo} from '/static/media/video-send.js';
import {createVideoView} from '/static/media/video-view.js';

const lab = /** @type {any} */ (window).townhallTest;

/**
 * Microphone -> Opus packets -> playout, in one page; optionally a synthetic second speaker.
 * @param {{dropEvery?: number, processing?: boolean, secondTone?: number,
 *          fastEvery?: number, slowEvery?: number}} options
 *   dropEvery: leave out every n-th packet (a lossy network); secondTone: also send a sine of
 *   this frequency, encoded here, as stream 2 at the microphone's pace; fastEvery/slowEvery:
 *   a sender whose clock runs fast (every n-th packet sent twice) or slow (every n-th packet
 *   never sent, with no gap in the sequence numbers)
 */
export async function startAudioLoop({
  dropEvery = 0, processing = true, secondTone = 0, fastEvery = 0, slowEvery = 0,
} = {}) {
  const playout = await createPlayout();
  const analyser = playout.audioContext.createAnalyser();
  analyser.fftSize = 32768;
  playout.output.connect(analyser);
  lab.playout = playout;
  lab.analyser = analyser;
  lab.sent = 0;
  lab.pushed = 0;
  let seq = 1000;
  const tone = secondTone ? await toneEncoder(secondTone, (packet, timestamp, toneSeq) => {
    playout.push(2, toneSeq, timestamp, packet);
  }) : null;
  lab.mic = await startMicrophone({
    processing,
    onPacket(packet, timestamp) {
      lab.sent += 1;
      if (tone) tone.next(timestamp);
      if (slowEvery && lab.sent % slowEvery === 0) return;
      seq += 1;
      if (dropEvery && seq % dropEvery === 0) return;
      lab.pushed += 1;
      playout.push(1, seq, timestamp, packet);
      if (fastEvery && lab.sent % fastEvery === 0) {
        seq += 1;
        playout.push(1, seq, timestamp + 20000, packet);
      }
    },
  });
}

/** What the playout played in the last ~0.7 s (the analyser's window), as plain numbers. */
export function recentOutput() {
  const samples = new Float32Array(lab.analyser.fftSize);
  lab.analyser.getFloatTimeDomainData(samples);
  return {samples: Array.from(samples), sampleRate: lab.analyser.context.sampleRate};
}

/**
 * An Opus encoder of a sine, 20 ms per next() call.
 * @param {number} frequency
 * @param {(packet: Uint8Array, timestamp: number, seq: number) => void} onPacket
 */
async function toneEncoder(frequency, onPacket) {
  let seq = 50;
  const encoder = new AudioEncoder({
    output(chunk) {
      const packet = new Uint8Array(chunk.byteLength);
      chunk.copyTo(packet);
      seq += 1;
      onPacket(packet, chunk.timestamp, seq);
    },
    error(error) {
      lab.toneError = String(error);
    },
  });
  encoder.configure({codec: 'opus', sampleRate: 48000, numberOfChannels: 1, bitrate: 32000,
    opus: {frameDuration: 20000}});
  let phase = 0;
  return {
    next(/** @type {number} */ timestamp) {
      const samples = new Float32Array(960);
      for (let i = 0; i < samples.length; i++) {
        samples[i] = 0.5 * Math.sin(phase);
        phase += 2 * Math.PI * frequency / 48000;
      }
      const data = new AudioData({format: 'f32-planar', sampleRate: 48000, numberOfFrames: 960,
        numberOfChannels: 1, timestamp, data: samples});
      encoder.encode(data);
      data.close();
    },
  };
}

/**
 * Video sender -> view, in one page. The view can join late (after `skipFirst` frames) and
 * frames can be lost (`dropAfter`: drop `dropCount` frames after that many frames sent).
 * @param {{source?: 'camera' | 'screen', canvasTrack?: boolean, skipFirst?: number,
 *          keyFrameSeconds?: number, dropAfter?: number, dropCount?: number,
 *          codecs?: Array<'vp8' | 'h264'>}} options
 */
export async function startVideoLoop({
  source = 'camera', canvasTrack = false, skipFirst = 0, keyFrameSeconds = 3,
  dropAfter = 0, dropCount = 0, codecs = undefined,
} = {}) {
  lab.frames = 0;
  lab.keyFramesAsked = 0;
  lab.keyFramesSent = 0;
  lab.view = null;
  let seq = 0;
  const track = canvasTrack ? paintedCanvasTrack() : undefined;
  const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById('view'));
  lab.sender = await startVideo({
    source, track, keyFrameSeconds, codecs,
    onFrame(data, timestamp, isKey) {
      seq += 1;
      lab.frames += 1;
      if (isKey) lab.keyFramesSent += 1;
      if (seq === skipFirst + 1) {
        lab.view = createVideoView(canvas, {
          codec: lab.sender.codec,
          onNeedKeyFrame() {
            lab.keyFramesAsked += 1;
            lab.sender.requestKeyFrame();
          },
        });
      }
      if (!lab.view) return;
      if (dropAfter && seq > dropAfter && seq <= dropAfter + dropCount) return;
      lab.view.push(seq, timestamp, isKey, data);
    },
  });
  return lab.sender.codec;
}

/** A moving picture painted on a canvas, as a stand-in for a shared screen. */
function paintedCanvasTrack() {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 360;
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  let tick = 0;
  const paint = () => {
    tick += 1;
    context.fillStyle = '#f4f1e8';
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = '#1b4f72';
    context.fillRect((tick * 7) % canvas.width, 60, 120, 80);
    context.font = '32px sans-serif';
    context.fillText(`Slide ${tick}`, 40, 300);
  };
  paint();
  setInterval(paint, 50);
  return canvas.captureStream(20).getVideoTracks()[0];
}

/** How much the view's canvas varies (0 for a blank canvas) and its size. */
export function canvasVariety() {
  const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById('view'));
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < pixels.length; i += 4 * 97) {
    seen.add((pixels[i] >> 4) * 256 + (pixels[i + 1] >> 4) * 16 + (pixels[i + 2] >> 4));
  }
  return {colours: seen.size, width: canvas.width, height: canvas.height};
}
