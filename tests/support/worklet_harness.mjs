// Drives the web client's AudioWorklet processors outside a browser, at a given sample rate.
// Usage: node worklet_harness.mjs <static dir>. Prints one JSON report on stdout.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import vm from "node:vm";

const RATES = [16000, 24000, 44100, 48000];
const BLOCK = 128; // the render quantum

function load(dir, file, rate) {
  const posted = [];
  let Processor = null;
  class AudioWorkletProcessor {
    constructor() {
      this.port = { postMessage: (data) => posted.push(data), onmessage: null };
    }
  }
  const globals = { sampleRate: rate, AudioWorkletProcessor, registerProcessor: (_, cls) => (Processor = cls) };
  vm.runInContext(readFileSync(join(dir, file), "utf8"), vm.createContext(globals));
  return { node: new Processor(), posted };
}

function sine(rate, seconds, freq = 440, amplitude = 0.5) {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

function describe(samples) {
  let crossings = 0;
  let energy = 0;
  for (let i = 0; i < samples.length; i++) {
    energy += samples[i] * samples[i];
    if (i > 0 && (samples[i - 1] < 0) !== (samples[i] < 0)) crossings++;
  }
  return { length: samples.length, crossings, rms: Math.sqrt(energy / samples.length) };
}

function capture(dir, rate, channels) {
  const { node, posted } = load(dir, "capture-worklet.js", rate);
  const signal = sine(rate, 1.0);
  for (let start = 0; start + BLOCK <= signal.length; start += BLOCK) {
    const block = signal.slice(start, start + BLOCK);
    node.process([Array.from({ length: channels }, () => block.slice())]);
  }
  node.process([[]]); // no input connected: nothing happens
  const frames = posted.map(({ frame }) => new Int16Array(frame));
  const all = new Float32Array(frames.length * 480);
  frames.forEach((frame, i) => frame.forEach((v, j) => (all[i * 480 + j] = v / 32768)));
  const sizes = [...new Set(frames.map((frame) => frame.byteLength))];
  const levels = posted.map(({ level }) => level);
  return { rate, channels, frames: frames.length, sizes, maxLevel: Math.max(...levels), ...describe(all) };
}

function pull(node, blocks) {
  const out = [];
  for (let i = 0; i < blocks; i++) {
    const channel = new Float32Array(BLOCK);
    node.process([], [[channel]]);
    out.push(...channel);
  }
  return Float32Array.from(out);
}

function playback(dir, rate) {
  const { node, posted } = load(dir, "playback-worklet.js", rate);
  const pcm = Int16Array.from(sine(24000, 1.0), (v) => Math.round(v * 32767));
  for (let start = 0; start < pcm.length; start += 480) {
    node.port.onmessage({ data: { pcm: pcm.slice(start, start + 480).buffer } });
  }
  const blocks = Math.ceil((rate * 1.2) / BLOCK);
  const out = pull(node, blocks);
  let end = out.length;
  while (end > 0 && out[end - 1] === 0) end--;
  const last = posted[posted.length - 1];
  return { rate, played: last.played, queued: last.queued, ...describe(out.subarray(0, end)) };
}

function bargeIn(dir) {
  const { node, posted } = load(dir, "playback-worklet.js", 48000);
  const pcm = Int16Array.from(sine(24000, 1.0), (v) => Math.round(v * 32767));
  node.port.onmessage({ data: { pcm: pcm.buffer } });
  const before = describe(pull(node, 10));
  node.port.onmessage({ data: { clear: true } });
  const after = describe(pull(node, 10));
  return { before: before.rms, after: after.rms, report: posted[posted.length - 1] };
}

const dir = process.argv[2];
const report = {
  capture: [...RATES.map((rate) => capture(dir, rate, 1)), capture(dir, 48000, 2)],
  playback: RATES.map((rate) => playback(dir, rate)),
  bargeIn: bargeIn(dir),
};
console.log(JSON.stringify(report));
