// media/playout-worklet.js — the AudioWorklet half of audio-playout.js: one jitter buffer per
// received stream, played out and mixed on the audio thread.
//
// Each stream's decoded 48 kHz samples go into a ring. Playback waits until the ring holds the
// target latency (40 ms or more, raised by measured jitter and by underruns), then:
// - loss concealment: a frame lost in the network, or not there in time, is replaced by the
//   last pitch period of the audio before it, repeated (so a voice or tone goes on smoothly),
//   full level for 20 ms, fading to silence by 60 ms; after that the stream is silent until
//   it has buffered its target again. Real audio after concealment is cross-faded in.
// - latency and clock drift: when the buffered level strays more than 10 ms from the target
//   (a burst after a stall, a sender whose clock runs fast or slow), whole pitch periods are
//   dropped or played twice, cross-faded, so a voice keeps its pitch (up to 20 ms per 60 ms,
//   or per 30 ms while more than 30 ms above target); closer to the target the
//   ring is read at a rate stretched by at most ±0.1 % (resampling) to follow clock drift.
// - mixing: streams are summed and clamped to [-1, 1].
// Messages in: {type:'frame', id, samples, lostBefore}, {type:'jitter', id, ms},
// {type:'remove', id}. Out, every ~50 ms: {type:'report', levels: [[id, 0..1]], streams}.

const STREAM_RATE = 48000;
const RING = 2 * STREAM_RATE;
const FRAME = 960;
const MIN_TARGET_MS = 40;
const MAX_TARGET_MS = 300;
const CONCEAL_FULL = FRAME;
const CONCEAL_END = 3 * FRAME;
const CROSSFADE = 96;
const MAX_STRETCH = 0.001;         // ±1000 ppm: far more than any two sound cards drift apart
const TOLERANCE = 480;             // 10 ms off target before periods are dropped or repeated
const ADJUST_EVERY = 2880;         // at most one drop or repeat per 60 ms...
const CATCH_UP_EVERY = 1440;       // ...or per 30 ms while more than 30 ms above target
const FAR_ABOVE = 3 * TOLERANCE;
const MIN_LAG = 32;                // pitch periods searched: 1500 Hz down to 80 Hz
const MAX_LAG = 600;
const REPORT_EVERY = 0.05;

class StreamBuffer {
  constructor() {
    this.ring = new Float32Array(RING);
    this.written = 0;          // samples written so far (absolute index)
    this.readPos = 0;          // fractional absolute read position
    this.playing = false;
    this.concealRun = 0;       // samples concealed in a row at the write end
    this.concealPeriod = FRAME;
    this.concealSource = new Float32Array(FRAME);
    this.jitterMs = 0;
    this.penaltyMs = 0;
    this.levelAverage = 0;     // smoothed buffered level, in samples
    this.fadeFrom = -1;        // read position being cross-faded away from, or -1
    this.cooldown = 0;
    this.fadeLeft = 0;
    this.level = 0;
    this.stats = {
      framesReceived: 0, framesConcealed: 0, underruns: 0, samplesDropped: 0, samplesInserted: 0,
      overflows: 0, rebuffers: 0,
    };
  }

  targetSamples() {
    const ms = Math.min(MAX_TARGET_MS,
      Math.max(MIN_TARGET_MS, this.jitterMs + 25 + this.penaltyMs));
    return Math.round(ms * STREAM_RATE / 1000);
  }

  buffered() {
    return this.written - this.readPos;
  }

  /** @param {Float32Array} samples */
  write(samples) {
    this.stats.framesReceived += 1;
    if (this.concealRun > 0) {
      // Cross-fade from the concealment's continuation into the real audio.
      const n = Math.min(CROSSFADE, samples.length);
      for (let i = 0; i < n; i++) {
        const w = (i + 1) / (n + 1);
        samples[i] = samples[i] * w + this.concealSample(this.concealRun + i) * (1 - w);
      }
      this.concealRun = 0;
    }
    for (let i = 0; i < samples.length; i++) {
      this.ring[(this.written + i) % RING] = samples[i];
    }
    this.written += samples.length;
    if (this.buffered() > RING - FRAME) {
      this.stats.overflows += 1;
      this.readPos = this.written - this.targetSamples();
    }
  }

  /** Append `frames` frames of concealment at the write end. @param {number} frames */
  conceal(frames) {
    if (this.concealRun === 0) this.prepareConcealment();
    for (let f = 0; f < frames; f++) {
      for (let i = 0; i < FRAME; i++) {
        this.ring[(this.written + i) % RING] = this.concealSample(this.concealRun + i);
      }
      this.written += FRAME;
      this.concealRun += FRAME;
      this.stats.framesConcealed += 1;
    }
  }

  /** The concealment's sample `k` of the current run. @param {number} k */
  concealSample(k) {
    if (k >= CONCEAL_END) return 0;
    const gain = k < CONCEAL_FULL ? 1 : 1 - (k - CONCEAL_FULL) / (CONCEAL_END - CONCEAL_FULL);
    return this.concealSource[k % this.concealPeriod] * gain;
  }

  /**
   * The pitch period (in samples) of the audio in ring[start, start + window + MAX_LAG), by
   * normalised autocorrelation; 0 when it is not periodic enough (noise, silence).
   * @param {number} start @param {number} window
   */
  findPeriod(start, window) {
    let bestLag = 0;
    let bestScore = 0.5;
    const scores = new Float32Array(MAX_LAG + 2);
    const ring = this.ring;
    for (let lag = MIN_LAG; lag <= MAX_LAG; lag++) {
      let cross = 0;
      let energyA = 0;
      let energyB = 0;
      for (let i = 0; i < window; i += 2) {
        const a = ring[(start + i) % RING];
        const b = ring[(start + i + lag) % RING];
        cross += a * b;
        energyA += a * a;
        energyB += b * b;
      }
      const score = energyA > 1e-9 && energyB > 1e-9 ? cross / Math.sqrt(energyA * energyB) : 0;
      scores[lag] = score;
      if (score > bestScore) {
        bestScore = score;
        bestLag = lag;
      }
    }
    // Prefer the shortest lag almost as good as the best: the period, not a multiple of it.
    for (let lag = MIN_LAG + 1; lag < bestLag; lag++) {
      if (scores[lag] > 0.95 * bestScore && scores[lag] >= scores[lag - 1] &&
          scores[lag] >= scores[lag + 1]) {
        return lag;
      }
    }
    return bestLag;
  }

  // Keep the last pitch period written: repeated, it continues the signal with no jump at the
  // seam. Without a clear period (noise), the last 10 ms are repeated instead.
  prepareConcealment() {
    const window = 480;
    let period = 0;
    if (this.written >= window + MAX_LAG) period = this.findPeriod(this.written - window - MAX_LAG, window);
    if (period === 0) period = Math.min(480, this.written);
    this.concealPeriod = Math.max(1, period);
    for (let i = 0; i < this.concealPeriod; i++) {
      this.concealSource[i] = this.written >= period
        ? this.ring[(this.written - period + i) % RING] : 0;
    }
  }

  /** Drop whole pitch periods ahead (at most `most` samples) to bring latency down. */
  accelerate(/** @type {number} */ most) {
    const window = 480;
    const start = Math.floor(this.readPos);
    if (this.written - start < window + MAX_LAG + FRAME / 2) return;
    const period = this.findPeriod(start, window) || 480;
    const skip = Math.floor(most / period) * period;
    if (skip <= 0) return;
    this.jump(skip);
    this.stats.samplesDropped += skip;
  }

  /** Play whole pitch periods again (at most `most` samples) to build latency up. */
  expand(/** @type {number} */ most) {
    const window = 480;
    const start = Math.floor(this.readPos) - window - MAX_LAG;
    // The cross-fade goes on reading ahead of the old position: it must have arrived.
    if (start < 0 || this.written - start > RING - FRAME || this.buffered() < 2 * CROSSFADE) return;
    const period = this.findPeriod(start, window) || 480;
    const add = Math.floor(most / period) * period;
    if (add <= 0) return;
    this.jump(-add);
    this.stats.samplesInserted += add;
  }

  /** Move the read position by `by` samples, cross-fading from where it was. @param {number} by */
  jump(by) {
    this.fadeFrom = this.readPos;
    this.fadeLeft = CROSSFADE;
    this.readPos += by;
    this.levelAverage -= by;
    // After a stall, the burst that follows is played faster so latency comes down soon.
    const farAbove = this.levelAverage - this.targetSamples() > FAR_ABOVE;
    this.cooldown = farAbove ? CATCH_UP_EVERY : ADJUST_EVERY;
  }

  /** @param {number} position */
  sampleAt(position) {
    const i = Math.floor(position);
    const frac = position - i;
    const a = this.ring[i % RING];
    const b = this.ring[(i + 1) % RING];
    return a + (b - a) * frac;
  }

  /**
   * Add this stream's next `out.length` output samples into `out`.
   * @param {Float32Array} out
   * @param {number} step input samples per output sample at nominal speed
   */
  render(out, step) {
    const target = this.targetSamples();
    if (!this.playing) {
      if (this.buffered() < target) {
        this.level *= 0.9;
        return;
      }
      this.playing = true;
      this.levelAverage = this.buffered();
    }
    // Follow the target: whole pitch periods dropped or repeated for a real excess or
    // shortfall; within tolerance, a slight resampling follows the senders' clock drift.
    this.levelAverage += (this.buffered() - this.levelAverage) * 0.02;
    const excess = this.levelAverage - target;
    this.cooldown -= out.length;
    if (this.fadeLeft === 0 && this.cooldown <= 0) {
      if (excess > TOLERANCE) this.accelerate(Math.min(excess, FRAME));
      else if (excess < -TOLERANCE && this.concealRun === 0) this.expand(Math.min(-excess, FRAME / 2));
    }
    const stretch = Math.max(-MAX_STRETCH, Math.min(MAX_STRETCH, MAX_STRETCH * excess / TOLERANCE));
    const rate = step * (1 + stretch);
    let energy = 0;
    for (let i = 0; i < out.length; i++) {
      if (this.written - this.readPos < 2) {
        // Underrun: what should be here has not arrived; conceal a frame and count it.
        if (this.concealRun >= CONCEAL_END) {
          // Concealment has faded out: be silent until the target is buffered again.
          this.playing = false;
          this.stats.rebuffers += 1;
          this.readPos = this.written;
          this.levelAverage = 0;
          break;
        }
        // An underrun raises the target a little (once per run of concealment): the jitter
        // measured from arrivals missed something, such as this page's own stalls.
        if (this.concealRun === 0) this.penaltyMs = Math.min(100, this.penaltyMs + 5);
        this.stats.underruns += 1;
        this.conceal(1);
      }
      let sample = this.sampleAt(this.readPos);
      if (this.fadeLeft > 0) {
        const w = this.fadeLeft / (CROSSFADE + 1);
        sample = sample * (1 - w) + this.sampleAt(this.fadeFrom) * w;
        this.fadeFrom += rate;
        this.fadeLeft -= 1;
      }
      this.readPos += rate;
      out[i] += sample;
      energy += sample * sample;
    }
    const rms = Math.sqrt(energy / out.length);
    const instant = rms > 0 ? Math.min(1, Math.max(0, (20 * Math.log10(rms) + 60) / 60)) : 0;
    this.level = Math.max(instant, this.level * 0.97);
  }
}

class TownhallPlayout extends AudioWorkletProcessor {
  constructor() {
    super();
    /** @type {Map<number, StreamBuffer>} */
    this.streams = new Map();
    this.lastReport = 0;
    this.penaltyDecayAt = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  /** @param {any} message */
  receive(message) {
    if (message.type === 'frame') {
      let stream = this.streams.get(message.id);
      if (!stream) {
        stream = new StreamBuffer();
        this.streams.set(message.id, stream);
      }
      const lost = Math.min(10, Math.max(0, message.lostBefore | 0));
      // Also while (re)buffering: the lost frames keep their place in the timeline.
      if (lost > 0 && stream.written > 0) stream.conceal(lost);
      stream.write(message.samples);
    } else if (message.type === 'jitter') {
      const stream = this.streams.get(message.id);
      if (stream) stream.jitterMs = Math.min(MAX_TARGET_MS, Math.max(0, Number(message.ms) || 0));
    } else if (message.type === 'remove') {
      this.streams.delete(message.id);
    }
  }

  process(_inputs, outputs) {
    const output = outputs[0];
    const mix = output[0];
    const step = STREAM_RATE / sampleRate;
    for (const stream of this.streams.values()) stream.render(mix, step);
    for (let i = 0; i < mix.length; i++) {
      const x = mix[i];
      mix[i] = x > 1 ? 1 : x < -1 ? -1 : x;
    }
    for (let c = 1; c < output.length; c++) output[c].set(mix);
    if (currentTime - this.penaltyDecayAt >= 1) {
      this.penaltyDecayAt = currentTime;
      for (const stream of this.streams.values()) stream.penaltyMs = Math.max(0, stream.penaltyMs - 2);
    }
    if (currentTime - this.lastReport >= REPORT_EVERY) {
      this.lastReport = currentTime;
      this.report();
    }
    return true;
  }

  report() {
    const levels = [];
    const streams = [];
    for (const [id, stream] of this.streams) {
      levels.push([id, stream.level]);
      streams.push({
        id,
        playing: stream.playing,
        bufferedMs: (stream.buffered() * 1000) / STREAM_RATE,
        targetMs: (stream.targetSamples() * 1000) / STREAM_RATE,
        jitterMs: stream.jitterMs,
        concealPeriod: stream.concealPeriod,
        ...stream.stats,
      });
    }
    this.port.postMessage({type: 'report', levels, streams, contextTime: currentTime});
  }
}

registerProcessor('townhall-playout', TownhallPlayout);
