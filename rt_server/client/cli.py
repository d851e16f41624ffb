"""``rt-chat``: chat with an rt_server from a terminal.

    rt-chat                          a text REPL (Ctrl-D or /quit ends it)
    rt-chat --text "Hello"           one typed turn, then exit (scriptable)
    rt-chat --wav question.wav       speak a WAV file at real-time pace, print what was heard
    ... --out reply.wav              save the reply audio (24 kHz mono PCM16)

The reply text goes to stdout; progress and latencies go to stderr. Exit status: 0 ok,
1 connection or server error, 2 usage (including a WAV that cannot be read), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rt_server.client.connection import RtClient
from rt_server.client.errors import RtClientError, ServerError
from rt_server.client.reply import Incoming, Reply, ReplyCollector
from rt_server.client.wav import RATE, WavError, read_wav, silence, write_wav

DEFAULT_URL = "ws://127.0.0.1:8080/realtime"
TRAILING_SILENCE = 1.0  # seconds after a WAV, so server VAD ends the turn


@dataclass(slots=True)
class Display:
    """Prints a turn as it arrives: reply text streamed to ``out``, progress to ``err``."""

    out: TextIO
    err: TextIO
    voice: bool = False  # label lines "you:" / "assistant:" and report speech events
    _mid_line: bool = False
    _held_user: str | None = None
    _held_notes: list[str] = field(default_factory=list)

    def show(self, message: Incoming, collector: ReplyCollector) -> None:
        if isinstance(message, bytes):
            return
        match message["type"]:
            case "text_delta" if message["id"] == collector.id:
                if not self._mid_line:
                    self.out.write("assistant: " if self.voice else "")
                    self._mid_line = True
                self.out.write(message["delta"])
                self.out.flush()
            case "transcription" if not message.get("partial"):  # captions: the final only
                if self._mid_line:
                    self._held_user = message["text"]  # do not break the reply's line
                else:
                    self._user(message["text"])
            case "control":
                self._control(message["action"], message.get("name", ""))

    def _control(self, action: str, name: str) -> None:
        notes = {
            "speech_started": "speech started",
            "shutting_down": "the server is shutting down",
            "tool_call": f"calling tool {name}",
            "tool_done": f"tool {name} done",
            "timeout_triggered": "you were silent for a while",
        }
        if action in notes and (self.voice or action != "speech_started"):
            self.note(notes[action])

    def _user(self, text: str) -> None:
        self.out.write(f"you: {text}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        if self._mid_line:
            self._held_notes.append(text)  # the reply's line stays whole, even when piped
            return
        self.err.write(f"[{text}]\n")
        self.err.flush()

    def finish(self, reply: Reply, since: float = 0.0) -> None:
        """End the turn: the held transcription, then latencies from ``since`` s in."""
        self._end_line()
        if self._held_user is not None:
            self._user(self._held_user)
            self._held_user = None
        self.err.write(f"[{_stats(reply, since)}]\n")
        self.err.flush()

    def prompt(self) -> None:
        self.err.write("> ")
        self.err.flush()

    def _end_line(self) -> None:
        if self._mid_line:
            self.out.write("\n")
            self.out.flush()
            self._mid_line = False
        notes, self._held_notes = self._held_notes, []
        for text in notes:
            self.note(text)


def _stats(reply: Reply, since: float) -> str:
    def ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{(seconds - since) * 1000:.0f} ms"

    return (
        f"first text {ms(reply.first_delta)}, first audio {ms(reply.first_audio)}, "
        f"total {ms(reply.total)}, {reply.audio_seconds:.1f} s of audio"
    )


@dataclass(slots=True)
class Session:
    """One run of the CLI: a connected client, the display, and the audio kept for ``--out``."""

    client: RtClient
    display: Display
    timeout: float
    audio: bytearray = field(default_factory=bytearray)

    async def turn(self, collector: ReplyCollector) -> Reply:
        """Show frames as they arrive until the collector's turn is complete."""
        async with asyncio.timeout(self.timeout):
            while True:
                message = await self.client.receive()
                done = collector.feed(message, time.perf_counter())
                self.display.show(message, collector)
                if done:
                    break
        reply = collector.reply(time.perf_counter())
        self.audio += reply.audio
        return reply

    async def text(self, text: str) -> None:
        collector = ReplyCollector(time.perf_counter())
        await self.client.send_text(text)
        self.display.finish(await self.turn(collector))

    async def wav(self, pcm: bytes, *, commit: bool) -> None:
        """Stream ``pcm`` and the trailing silence at real-time pace while showing the turn."""
        spoken = len(pcm) / (2 * RATE)
        self.display.note(f"streaming {spoken:.1f} s of audio + {TRAILING_SILENCE:g} s of silence")
        collector = ReplyCollector(time.perf_counter(), transcription=True)
        try:
            async with asyncio.TaskGroup() as group:
                sender = group.create_task(self._send_wav(pcm, commit))
                reply = await self.turn(collector)
                sender.cancel()  # the turn is over: the rest of the silence is not needed
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None  # one failure is enough to report
        self.display.finish(reply, since=spoken)

    async def _send_wav(self, pcm: bytes, commit: bool) -> None:
        await self.client.stream_audio(pcm + silence(TRAILING_SILENCE))
        if commit:
            await self.client.commit()
        self.display.note("audio sent, waiting for the reply")

    async def repl(self, stdin: TextIO) -> None:
        self.display.note("type a message and press Enter; Ctrl-D or /quit ends")
        interactive = stdin.isatty()
        while True:
            if interactive:
                self.display.prompt()
            line = await _read_line(stdin)
            if line is None or line.strip() == "/quit":
                return
            if not line.strip():
                continue
            try:
                await self.text(line.strip())
            except ServerError as exc:  # this turn failed; the session may go on
                self.display.note(f"error {exc}")


async def _read_line(stdin: TextIO) -> str | None:
    """One line of stdin, or None at its end.

    Read in a daemon thread: a thread blocked in ``readline`` must not keep the process
    alive after Ctrl-C or a server close, which ``asyncio.to_thread`` would.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def read() -> None:
        line = stdin.readline()
        loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="rt-chat-stdin", daemon=True).start()
    line = await future
    return line.rstrip("\n") if line else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rt-chat", description="Chat with an rt_server from a terminal."
    )
    parser.add_argument(
        "--url", default=os.environ.get("RT_URL", DEFAULT_URL), help=f"default {DEFAULT_URL}"
    )
    parser.add_argument(
        "--token", default=os.environ.get("RT_TOKEN"), help="client token (default $RT_TOKEN)"
    )
    parser.add_argument("--profile", help="the server's assistant profile to use")
    turn = parser.add_mutually_exclusive_group()
    turn.add_argument("--text", help="send one message, print the reply and exit")
    turn.add_argument("--wav", type=Path, help="speak this WAV file (16-bit PCM), then exit")
    parser.add_argument("--out", type=Path, help="save the reply audio to this WAV file")
    parser.add_argument(
        "--commit", action="store_true", help="commit after the WAV (push-to-talk servers)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per turn")
    args = parser.parse_args(argv)
    if args.text is not None and not args.text.strip():
        parser.error("--text must not be empty")
    if not args.url.startswith(("ws://", "wss://")):
        parser.error(f"--url must start with ws:// or wss://, got {args.url!r}")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


async def run(args: argparse.Namespace, pcm: bytes | None) -> None:
    display = Display(sys.stdout, sys.stderr, voice=pcm is not None)
    display.note(f"connecting to {args.url.split('?')[0]}")  # a query may hold a token
    started = time.perf_counter()
    async with RtClient.connect(args.url, token=args.token, profile=args.profile) as client:
        ms = (time.perf_counter() - started) * 1000
        display.note(f"connected in {ms:.0f} ms: {client.greeting}")
        session = Session(client, display, args.timeout)
        try:
            if pcm is not None:
                await session.wav(pcm, commit=args.commit)
            elif args.text is not None:
                await session.text(args.text)
            else:
                await session.repl(sys.stdin)
        finally:
            if args.out is not None:
                write_wav(args.out, bytes(session.audio))
                display.note(f"saved {len(session.audio) / (2 * RATE):.1f} s to {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pcm = None
    if args.wav is not None:
        try:
            pcm = read_wav(args.wav)
        except (OSError, WavError) as exc:
            print(f"rt-chat: error: {args.wav}: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(run(args, pcm))
    except KeyboardInterrupt:
        return 130
    except TimeoutError:
        print(f"rt-chat: no complete reply within {args.timeout:g} s", file=sys.stderr)
        return 1
    except RtClientError as exc:
        print(f"rt-chat: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
