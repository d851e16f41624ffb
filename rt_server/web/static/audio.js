// Audio for the page: reply playback and microphone capture, each an AudioWorklet.
// The wire format both ways is PCM16 little-endian mono 24 kHz.

const WIRE_RATE = 24000;

// Ask for a 24 kHz context; some browsers refuse or ignore the rate, and the worklets
// resample from whatever rate the context really has.
function newContext() {
  try {
    return new AudioContext({ sampleRate: WIRE_RATE, latencyHint: "interactive" });
  } catch {
    return new AudioContext({ latencyHint: "interactive" });
  }
}

const moduleUrl = (name) => new URL(name, import.meta.url).href;

// A player: play(ArrayBuffer of PCM16) queues audio, clear() drops everything queued.
export async function createPlayer(stats) {
  const context = newContext(); // created before any await: counts as the user's gesture
  await context.audioWorklet.addModule(moduleUrl("playback-worklet.js"));
  const node = new AudioWorkletNode(context, "pcm16-playback", { outputChannelCount: [1] });
  node.connect(context.destination);
  node.port.onmessage = ({ data }) => {
    stats.samplesPlayed = data.played;
    stats.samplesQueued = data.queued;
    if (data.dropped !== undefined) stats.samplesDropped += data.dropped;
  };
  await context.resume();
  stats.playbackRate = context.sampleRate;
  return {
    play(buffer) {
      stats.samplesQueued += buffer.byteLength / 2; // an estimate until the worklet reports
      node.port.postMessage({ pcm: buffer }, [buffer]);
    },
    clear() {
      stats.playbackClears += 1;
      stats.samplesQueued = 0;
      node.port.postMessage({ clear: true });
    },
    get busy() {
      return stats.samplesQueued > 0;
    },
    close: () => context.close(),
  };
}

// The microphone: onFrame(ArrayBuffer) gets 20 ms of PCM16 24 kHz, onLevel(0..1) its level.
export async function startMic(onFrame, onLevel, stats) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  let context = newContext();
  let source;
  try {
    source = context.createMediaStreamSource(stream);
  } catch {
    // Firefox cannot connect a microphone to a context at another rate: use the default.
    await context.close();
    context = new AudioContext({ latencyHint: "interactive" });
    source = context.createMediaStreamSource(stream);
  }
  try {
    await context.audioWorklet.addModule(moduleUrl("capture-worklet.js"));
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    await context.close();
    throw error;
  }
  const node = new AudioWorkletNode(context, "pcm16-capture", { numberOfOutputs: 1 });
  const mute = new GainNode(context, { gain: 0 }); // keeps the graph pulled, plays nothing
  node.port.onmessage = ({ data }) => {
    onFrame(data.frame);
    onLevel(data.level);
  };
  source.connect(node).connect(mute).connect(context.destination);
  await context.resume();
  stats.captureRate = context.sampleRate;
  return {
    async stop() {
      stream.getTracks().forEach((track) => track.stop());
      node.port.onmessage = null;
      await context.close();
    },
  };
}
