// One turn through rt_server's gateway with the openai npm package's OpenAIRealtimeWS.
// Usage: node realtime.mjs <http base URL ending in /v1> <api key> text <words>
//        node realtime.mjs <http base URL ending in /v1> <api key> audio <PCM16 24 kHz file>
// Prints every event received as one JSON array once the response is done.
//
// The SDK always builds a wss: URL; rt_server listens on plain loopback here, so the
// socket is handed to ws through its createConnection option (a plain TCP connection).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const [baseURL, apiKey, mode, input] = process.argv.slice(2);
const { hostname, port } = new URL(baseURL);
const client = new OpenAI({ apiKey, baseURL });
const rt = new OpenAIRealtimeWS(
  {
    model: 'gpt-realtime',
    options: { createConnection: () => net.connect(Number(port), hostname) },
  },
  client,
);

const events = [];
rt.on('event', (event) => {
  events.push(event);
  if (event.type === 'response.done') rt.close();
});
rt.on('error', (error) => console.error(`realtime error: ${error.message}`));

rt.socket.on('open', () => {
  if (mode === 'text') {
    rt.send({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: input }] },
    });
    rt.send({ type: 'response.create' });
    return;
  }
  const pcm = Buffer.concat([readFileSync(input), Buffer.alloc(48 * 1500)]);
  for (let start = 0; start < pcm.length; start += 4800) {
    const audio = pcm.subarray(start, start + 4800).toString('base64');
    rt.send({ type: 'input_audio_buffer.append', audio });
  }
});
rt.socket.on('unexpected-response', (_request, response) => {
  console.error(`refused: ${response.statusCode}`);
  process.exitCode = 2;
});
rt.socket.on('close', (code) => {
  process.stdout.write(JSON.stringify({ code, events }));
});
