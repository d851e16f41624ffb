"""An offline, protocol-faithful stand-in for the OpenAI and Azure OpenAI Realtime API.

    async with run_emulator(EmulatorConfig()) as emu:
        client = AsyncOpenAI(api_key="sk-test", base_url=emu.http_url + "/v1")
        async with client.realtime.connect(model="gpt-realtime") as connection:
            ...

See README.md in this directory for paths, flags, the admin API and the script format.
"""

from rt_server.emulator.config import (
    EmulatorConfig,
    Faults,
    Rule,
    ToolCall,
    faults_from_dict,
    load_rules,
    rules_from_json,
)
from rt_server.emulator.conversation import Conversation
from rt_server.emulator.server import RunningEmulator, create_emulator_app, run_emulator
from rt_server.emulator.state import EmulatorState

__all__ = [
    "Conversation",
    "EmulatorConfig",
    "EmulatorState",
    "Faults",
    "Rule",
    "RunningEmulator",
    "ToolCall",
    "create_emulator_app",
    "faults_from_dict",
    "load_rules",
    "rules_from_json",
    "run_emulator",
]
