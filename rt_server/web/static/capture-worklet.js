// Microphone capture: mono, resampled to 24 kHz, sent to the page as PCM16 frames of 20 ms.
// Runs on the audio thread; posts {frame: ArrayBuffer, level: 0..1} once per frame.

const TARGET_RATE = 24000;
const FRAME_SAMPLES = 480; // 20 ms at 24 kHz

class Pcm16Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.pos = 0; // where the next output sample falls, in input samples of this block
    this.last = 0; // the last input sample of the previous block
    this.lowpass = this.step > 1 ? lowpass(0.45 * TARGET_RATE, sampleRate) : null;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
    this.energy = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels.length === 0) return true; // no input connected yet
    const mono = mix(channels);
    if (this.lowpass) this.lowpass(mono);
    this.resample(mono);
    return true;
  }

  // Linear interpolation between input samples; the low-pass above keeps it alias-free.
  resample(input) {
    let pos = this.pos;
    while (pos < input.length - 1) {
      const i = Math.floor(pos);
      const a = i < 0 ? this.last : input[i];
      this.push(a + (input[i + 1] - a) * (pos - i));
      pos += this.step;
    }
    this.pos = pos - input.length;
    this.last = input[input.length - 1];
  }

  push(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.energy += s * s;
    if (this.filled === FRAME_SAMPLES) {
      const level = Math.min(1, Math.sqrt(this.energy / FRAME_SAMPLES) * 4);
      this.port.postMessage({ frame: this.frame.buffer, level }, [this.frame.buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
      this.energy = 0;
    }
  }
}

function mix(channels) {
  if (channels.length === 1) return Float32Array.from(channels[0]);
  const out = new Float32Array(channels[0].length);
  for (const channel of channels) {
    for (let i = 0; i < out.length; i++) out[i] += channel[i] / channels.length;
  }
  return out;
}

// A second-order Butterworth low-pass (RBJ cookbook), filtering a block in place.
function lowpass(cutoff, rate) {
  const w = (2 * Math.PI * cutoff) / rate;
  const alpha = Math.sin(w) / Math.SQRT2;
  const a0 = 1 + alpha;
  const b0 = (1 - Math.cos(w)) / 2 / a0;
  const b1 = (1 - Math.cos(w)) / a0;
  const a1 = (-2 * Math.cos(w)) / a0;
  const a2 = (1 - alpha) / a0;
  let x1 = 0, x2 = 0, y1 = 0, y2 = 0;
  return (block) => {
    for (let i = 0; i < block.length; i++) {
      const x = block[i];
      const y = b0 * x + b1 * x1 + b0 * x2 - a1 * y1 - a2 * y2;
      x2 = x1; x1 = x; y2 = y1; y1 = y;
      block[i] = y;
    }
  };
}

registerProcessor("pcm16-capture", Pcm16Capture);
