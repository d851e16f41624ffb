"""`python -m rt_server.emulator` / `rt-emulator`: serve the Realtime API emulator."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from loguru import logger

from rt_server.emulator.config import EmulatorConfig, Faults, load_rules
from rt_server.emulator.server import create_emulator_app, uvicorn_config


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rt-emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--api-key",
        default=os.environ.get("EMULATOR_API_KEY"),
        help="require this key (default: accept any; env EMULATOR_API_KEY)",
    )
    p.add_argument("--script", type=Path, help="JSON file of reply rules (see README.md)")
    p.add_argument("--pace", choices=["fast", "realtime"], default="fast")
    p.add_argument("--echo-audio", action="store_true", help="answer each audio append with it")
    p.add_argument("--words-per-second", type=float, default=3.0)
    p.add_argument("--audio-chunk-ms", type=int, default=100)
    p.add_argument(
        "--audio-chunks-ms",
        type=lambda text: tuple(int(ms) for ms in text.split(",")),
        default=(),
        help="audio per delta, cycled, e.g. 20,60,10,120 (default: --audio-chunk-ms each)",
    )
    p.add_argument("--log-level", default="INFO")
    faults = p.add_argument_group("faults")
    faults.add_argument("--handshake-status", type=int)
    faults.add_argument("--retry-after", type=int)
    faults.add_argument("--close-after-events", type=int)
    faults.add_argument("--close-code", type=int, default=1011)
    faults.add_argument("--close-mid-response", action="store_true")
    faults.add_argument("--latency-ms", type=float, default=0.0)
    faults.add_argument("--max-session-seconds", type=float)
    faults.add_argument("--stall-responses", action="store_true")
    faults.add_argument("--fail-transcription", action="store_true")
    return p.parse_args(argv)  # fmt: skip


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults = Faults(
        handshake_status=args.handshake_status,
        retry_after=args.retry_after,
        close_after_events=args.close_after_events,
        close_code=args.close_code,
        close_mid_response=args.close_mid_response,
        latency_ms=args.latency_ms,
        max_session_seconds=args.max_session_seconds,
        stall_responses=args.stall_responses,
        fail_transcription=args.fail_transcription,
    )
    return EmulatorConfig(
        api_key=args.api_key,
        rules=load_rules(args.script) if args.script else (),
        pace=args.pace,
        faults=faults,
        echo_audio=args.echo_audio,
        words_per_second=args.words_per_second,
        audio_chunk_ms=args.audio_chunk_ms,
        audio_chunks_ms=args.audio_chunks_ms,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        sys.exit(f"rt-emulator: {exc}")
    logger.info("Realtime emulator on ws://{}:{} (pace {})", args.host, args.port, config.pace)
    app = create_emulator_app(config)
    uvicorn.Server(uvicorn_config(app, host=args.host, port=args.port)).run()


if __name__ == "__main__":
    main()
