// Reply playback: a queue of PCM16 24 kHz chunks played in order, resampled to the
// context's rate. {clear: true} empties the queue at once (barge-in). Reports progress as
// {played: samples, queued: samples} a few times a second and whenever the queue drains.

const SOURCE_RATE = 24000;
const REPORT_EVERY = 2400; // output samples, ~50 ms at 48 kHz

class Pcm16Playback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = SOURCE_RATE / sampleRate; // source samples per output sample
    this.queue = []; // Float32Arrays at the output rate
    this.head = 0; // read position in queue[0]
    this.queued = 0;
    this.played = 0;
    this.unreported = 0;
    this.pos = 0;
    this.last = 0;
    this.port.onmessage = ({ data }) => (data.clear ? this.clear() : this.enqueue(data.pcm));
  }

  enqueue(buffer) {
    const pcm = new Int16Array(buffer);
    const samples = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 0x8000;
    const chunk = this.step === 1 ? samples : this.resample(samples);
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  // Linear interpolation, carrying the fractional position from chunk to chunk.
  resample(input) {
    const out = new Float32Array(Math.ceil((input.length - this.pos) / this.step) + 1);
    let n = 0;
    let pos = this.pos;
    while (pos < input.length - 1) {
      const i = Math.floor(pos);
      const a = i < 0 ? this.last : input[i];
      out[n++] = a + (input[i + 1] - a) * (pos - i);
      pos += this.step;
    }
    this.pos = pos - input.length;
    this.last = input[input.length - 1];
    return out.subarray(0, n);
  }

  clear() {
    const dropped = this.queued;
    this.queue = [];
    this.head = 0;
    this.queued = 0;
    this.port.postMessage({ played: this.played, queued: 0, dropped });
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const first = out[0];
    let n = 0;
    while (n < first.length && this.queue.length > 0) {
      const chunk = this.queue[0];
      const take = Math.min(first.length - n, chunk.length - this.head);
      first.set(chunk.subarray(this.head, this.head + take), n);
      n += take;
      this.head += take;
      if (this.head === chunk.length) {
        this.queue.shift();
        this.head = 0;
      }
    }
    first.fill(0, n);
    for (let c = 1; c < out.length; c++) out[c].set(first);
    this.queued -= n;
    this.played += n;
    this.unreported += n;
    if ((n > 0 && this.unreported >= REPORT_EVERY) || (n > 0 && this.queued === 0)) {
      this.port.postMessage({ played: this.played, queued: this.queued });
      this.unreported = 0;
    }
    return true;
  }
}

registerProcessor("pcm16-playback", Pcm16Playback);
