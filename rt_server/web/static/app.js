// The page: connect to /realtime, chat by text or voice, show the conversation.
import { createPlayer, startMic } from "./audio.js";

const $ = (id) => document.getElementById(id);

// Test hooks: an automated browser reads these to see that audio flowed both ways.
const stats = (window.rtStats = {
  state: "disconnected",
  framesSent: 0,
  bytesSent: 0,
  framesReceived: 0,
  bytesReceived: 0,
  samplesPlayed: 0, // at playbackRate
  samplesQueued: 0,
  samplesDropped: 0,
  playbackClears: 0,
  speechStarted: 0,
  captions: [], // partial transcripts shown, in order
  level: 0,
  captureRate: 0,
  playbackRate: 0,
});

// What the server's error codes mean, in words for the person at the keyboard.
const ERRORS = {
  unauthorized: "The server did not accept the token.",
  too_many_sessions: "The server is full right now.",
  session_expired: "This conversation reached its time limit.",
  idle_timeout: "The conversation was closed after a quiet spell.",
  message_too_large: "That message is too long to send.",
  audio_rate_exceeded: "Audio arrived faster than real time.",
  slow_client: "This page fell behind the conversation.",
  unknown_profile: "The server does not know the requested profile.",
  backend_unreachable: "The server cannot reach the voice service.",
  backend_auth_failed: "The voice service refused the server's credentials.",
  backend_rate_limited: "The voice service is busy.",
  backend_unavailable: "The voice service is unavailable at the moment.",
  backend_error: "The voice service reported a problem.",
  backend_closed: "The connection to the voice service was lost.",
  backend_timeout: "The voice service did not answer in time.",
  transcription_failed: "What you said could not be made out.",
  backend_reconnected: "The connection to the voice service was restored.",
  internal_error: "Something went wrong in the server.",
  shutting_down: "The server is restarting. Connect again in a moment.",
  resume_expired: "The conversation could not be restored; a new one starts when you connect.",
  forbidden_origin: "The server does not accept connections from this page's address.",
};
const PROTOCOL_ERROR = "The server could not understand a message from this page.";

let ws = null;
let player = null;
let mic = null;
let closing = false;
// Resume: the token `connected` gave; an unexpected close reconnects with it (any
// instance behind the load balancer takes the conversation up again).
let resumeToken = null;
let resumeAttempts = 0;
const RESUMABLE = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
const RESUME_ATTEMPTS = 5;
const replies = new Map(); // text_delta id -> assistant bubble
let lastReply = null; // the newest assistant bubble: the one whose audio may be playing
const unheard = []; // speech bubbles still waiting for their transcription
const captions = new Map(); // input item id -> its bubble, while the transcript streams

// ------------------------------------------------------------------------------ the log

function bubble(role, text, ...classes) {
  const element = document.createElement("div");
  element.className = ["bubble", role, ...classes].join(" ");
  element.textContent = text;
  return append(element);
}

function note(text) {
  const element = document.createElement("p");
  element.className = "note";
  element.textContent = text;
  return append(element);
}

function showError(sentence, detail) {
  const element = document.createElement("div");
  element.className = "error";
  element.setAttribute("role", "alert");
  element.textContent = sentence;
  if (detail) {
    const small = document.createElement("small");
    small.textContent = detail;
    element.append(small);
  }
  return append(element);
}

function append(element) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(element);
  if (atBottom) log.scrollTop = log.scrollHeight;
  return element;
}

// -------------------------------------------------------------------------- connection

function setState(state, text) {
  stats.state = state;
  document.body.dataset.state = state;
  $("status").textContent = text;
  const live = state === "connected";
  for (const id of ["text", "send", "mic"]) $(id).disabled = !live;
  $("connect").textContent = state === "connected" || state === "connecting" ? "Disconnect" : "Connect";
  $("url").disabled = $("token").disabled = state === "connecting" || live;
}

function defaultUrl() {
  const url = new URL("realtime", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = url.hash = "";
  return url.href;
}

async function connect(resume = null) {
  let url;
  try {
    url = new URL($("url").value);
  } catch {
    showError("The server address is not a valid URL.");
    return;
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    showError("The server address must start with ws:// or wss://.");
    return;
  }
  if (url.host !== location.host) {
    // The page's Content-Security-Policy only allows its own server.
    showError(`This page can only connect to the server it came from (${location.host}).`);
    return;
  }
  const token = $("token").value.trim();
  if (token) url.searchParams.set("token", token); // browsers cannot set websocket headers
  if (resume) url.searchParams.set("resume", resume);
  else resumeToken = null;
  setState("connecting", resume ? "Reconnecting…" : "Connecting…");
  closing = false;
  try {
    player = await createPlayer(stats);
  } catch (error) {
    showError("Audio playback is not available; replies will be text only.", String(error));
  }
  try {
    ws = new WebSocket(url);
  } catch (error) {
    await player?.close();
    player = null;
    setState("error", "Could not connect");
    showError("The browser refused to open the connection.", String(error));
    return;
  }
  ws.binaryType = "arraybuffer";
  ws.onmessage = ({ data }) => (typeof data === "string" ? onMessage(JSON.parse(data)) : onAudio(data));
  ws.onclose = onClose;
}

function disconnect() {
  closing = true;
  ws?.close(1000, "bye");
}

async function onClose(event) {
  const wasConnected = stats.state === "connected";
  ws = null;
  await stopMic();
  await player?.close();
  player = null;
  if (closing) {
    setState("disconnected", "Disconnected");
  } else if (resumeToken && RESUMABLE.has(event.code) && resumeAttempts < RESUME_ATTEMPTS) {
    const delay = 200 * 2 ** resumeAttempts;
    resumeAttempts += 1;
    setState("connecting", "Reconnecting…");
    setTimeout(() => connect(resumeToken), delay);
  } else if (!wasConnected && event.code === 1006) {
    setState("error", "Could not connect");
    showError("Could not connect. The server may be down, or it refused the token.");
  } else {
    const why = event.reason ? `: ${event.reason}` : "";
    setState("error", `Disconnected by the server (${event.code}${why})`);
  }
}

function send(message) {
  if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

// ------------------------------------------------------------------- server -> page

function onMessage(message) {
  switch (message.type) {
    case "control":
      return onControl(message);
    case "text_delta":
      return onDelta(message);
    case "transcription":
      return onTranscription(message);
    case "error": {
      if (message.code === "transcription_failed") onTranscriptionFailed();
      if (message.code === "resume_expired") resumeToken = null;
      const sentence = ERRORS[message.code] ?? PROTOCOL_ERROR;
      const retry = message.retry_after ? ` Try again in ${Math.ceil(message.retry_after)} s.` : "";
      return showError(sentence + retry, message.message);
    }
  }
}

function onControl({ action, greeting, id, name, resume, interrupted }) {
  switch (action) {
    case "connected":
      setState("connected", "Connected");
      if (greeting && !resumeToken) bubble("assistant", greeting, "greeting");
      resumeToken = resume ?? null;
      return $("text").focus();
    case "resumed":
      resumeAttempts = 0;
      return note(
        interrupted
          ? "Reconnected; the last reply was lost, please ask again."
          : "Reconnected; the conversation goes on.",
      );
    case "speech_started":
      return onSpeechStarted();
    case "text_done":
      return replies.get(id)?.classList.remove("streaming");
    case "shutting_down":
      if (resume) resumeToken = resume;
      return note(
        resumeToken
          ? "The server is restarting; the conversation moves to another one."
          : "The server is shutting down; this conversation will end soon.",
      );
    case "tool_call":
      return note(`Using ${name ?? "a tool"}…`);
    case "tool_done":
      return note(`Done with ${name ?? "the tool"}.`);
  }
}

// Barge-in: the user talks over the reply, so the reply stops at once.
function onSpeechStarted() {
  stats.speechStarted += 1;
  stopPlayback();
  unheard.push(bubble("user", "…", "speech", "pending"));
}

// Drop every queued sample and mark the reply that was cut short.
function stopPlayback() {
  const wasPlaying = player?.busy;
  player?.clear();
  for (const element of replies.values()) {
    if (element.classList.contains("streaming") || (wasPlaying && element === lastReply)) {
      element.classList.remove("streaming");
      element.classList.add("interrupted");
    }
  }
}

function onDelta({ id, delta }) {
  let element = replies.get(id);
  if (!element) {
    element = bubble("assistant", "", "streaming");
    element.dataset.id = id;
    replies.set(id, element);
    lastReply = element;
  }
  element.textContent += delta;
  const log = $("log");
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 80) log.scrollTop = log.scrollHeight;
}

// A caption grows as the transcript streams (partial), then gets its final text.
function onTranscription({ id, text, partial }) {
  let element = captions.get(id);
  if (!element) {
    element = unheard.shift() ?? bubble("user", "", "speech");
    element.dataset.id = id;
  }
  element.classList.remove("pending");
  element.classList.toggle("partial", Boolean(partial));
  if (partial) {
    captions.set(id, element);
    stats.captions.push(text);
    element.textContent = text;
    return;
  }
  captions.delete(id);
  element.textContent = text || "(nothing heard)";
}

function onTranscriptionFailed() {
  const element = unheard.shift();
  if (!element) return;
  element.classList.remove("pending");
  element.textContent = "(not understood)";
}

function onAudio(buffer) {
  stats.framesReceived += 1;
  stats.bytesReceived += buffer.byteLength;
  player?.play(buffer);
}

// ------------------------------------------------------------------- page -> server

function sendText(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  if (player?.busy) {
    // A new question while the last answer still plays: stop the answer first.
    send({ type: "control", action: "interrupt" });
    stopPlayback();
  }
  send({ type: "user_message", text });
  bubble("user", text);
  $("text").value = "";
}

async function toggleMic() {
  if (mic) return stopMic();
  $("mic").disabled = true;
  try {
    mic = await startMic(sendFrame, showLevel, stats);
    document.body.dataset.mic = "on";
    $("mic").textContent = "Stop microphone";
  } catch (error) {
    const sentences = {
      NotAllowedError: "Microphone access was denied.",
      NotFoundError: "No microphone was found.",
      NotReadableError: "The microphone is in use by another program.",
    };
    showError(sentences[error.name] ?? "The microphone could not be started.", String(error));
  } finally {
    $("mic").disabled = stats.state !== "connected";
  }
}

async function stopMic() {
  const stopping = mic;
  mic = null;
  document.body.dataset.mic = "off";
  $("mic").textContent = "Start microphone";
  showLevel(0);
  await stopping?.stop();
}

function sendFrame(frame) {
  if (ws?.readyState !== WebSocket.OPEN) return;
  ws.send(frame);
  stats.framesSent += 1;
  stats.bytesSent += frame.byteLength;
}

function showLevel(level) {
  stats.level = level;
  $("level").value = level;
}

// ------------------------------------------------------------------------------ wiring

$("url").value = defaultUrl();
$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (stats.state === "connecting" && !ws) return; // still setting up audio
  if (ws) disconnect();
  else connect();
});
$("chat-form").addEventListener("submit", sendText);
$("mic").addEventListener("click", toggleMic);
setState("disconnected", "Disconnected");
