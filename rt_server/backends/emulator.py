"""The embedded emulator: ``BACKEND=emulator`` serves a working assistant offline.

The emulator runs on a loopback port inside this process and is reached through the same
backend code as OpenAI, so the embedded mode exercises exactly the production code.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from openai import AsyncOpenAI

from rt_server.backends.openai import OpenAIBackend
from rt_server.backends.sockets import SocketKind


class EmulatorBackend(OpenAIBackend):
    """An in-process Realtime API emulator behind the OpenAI backend."""

    name = "emulator"

    def __init__(self, *, model: str, timeout: float = 15.0, socket: SocketKind = "picows") -> None:
        super().__init__(AsyncOpenAI(api_key="emulator"), model, timeout=timeout, socket=socket)
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        from rt_server.emulator import EmulatorConfig, run_emulator

        emulator = await self._stack.enter_async_context(
            run_emulator(EmulatorConfig(pace="realtime"))
        )
        await self._client.close()
        self._client = AsyncOpenAI(api_key="emulator", base_url=f"{emulator.http_url}/v1")

    async def aclose(self) -> None:
        await super().aclose()
        await self._stack.aclose()
