"""Server-side tools: async functions the model may call, run where the data lives.

A tool is an async function with a JSON schema, derived from its type hints (or given)::

    registry = ToolRegistry()

    @registry.tool(description="The current time in a time zone.")
    async def current_time(timezone: str = "UTC") -> str: ...

Deployers add tools without forking: ``RT_TOOLS=my_package.tools`` imports that module
and takes its module-level ``registry`` (a :class:`ToolRegistry`). :meth:`ToolRegistry.run`
never raises: timeouts, exceptions, bad arguments and unknown names become an error
output the model can read, and the session goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, get_type_hints

import orjson
from loguru import logger
from pydantic import TypeAdapter, ValidationError

from rt_server.errors import ConfigError
from rt_server.translate import ToolCall

ToolFunction: TypeAlias = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its function, the schema the model sees, and how long it may run."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction
    timeout: float = 10.0
    #: How the model should speak about the result: the instructions of the reply that
    #: follows the tool's output (None: the session's own).
    reply_instructions: str | None = None

    def schema(self) -> dict[str, Any]:
        """The Realtime API's function tool definition."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


class ToolRegistry:
    """Tools by name; what a session offers the model and runs for it."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def __len__(self) -> int:
        return len(self._tools)

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        timeout: float = 10.0,
        reply_instructions: str | None = None,
    ) -> Callable[[ToolFunction], ToolFunction]:
        """Register an async function as a tool (a decorator); ``reply_instructions``: how
        the model answers once it has the tool's output."""

        def register(function: ToolFunction) -> ToolFunction:
            if not inspect.iscoroutinefunction(function):
                raise TypeError(f"tool {function.__name__} must be an async function")
            self.add(
                Tool(
                    name=name or function.__name__,
                    description=description or inspect.getdoc(function) or "",
                    parameters=parameters or parameters_schema(function),
                    function=function,
                    timeout=timeout,
                    reply_instructions=reply_instructions,
                )
            )
            return function

        return register

    def merge(self, other: ToolRegistry) -> None:
        self._tools.update(other._tools)

    def reply_instructions(self, name: str) -> str | None:
        """The instructions of the reply after tool ``name``'s output, if it has some."""
        tool = self._tools.get(name)
        return tool.reply_instructions if tool is not None else None

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    async def run(self, call: ToolCall) -> str:
        """Run ``call`` and return its output as a JSON string; never raises."""
        tool = self._tools.get(call.name)
        if tool is None:
            return _error(f"there is no tool named {call.name!r}")
        try:
            arguments = orjson.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                return _error("the arguments must be a JSON object")
            arguments = _validate(tool.function, arguments)
            async with asyncio.timeout(tool.timeout):
                result = await tool.function(**arguments)
        except TimeoutError:
            return _error(f"the tool {call.name!r} took longer than {tool.timeout:g} s")
        except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
            return _error(f"bad arguments for {call.name!r}: {exc}")
        except Exception as exc:
            logger.opt(exception=exc).warning("tool {} failed", call.name)
            return _error(f"the tool {call.name!r} failed: {type(exc).__name__}")
        return result if isinstance(result, str) else orjson.dumps(result).decode()


def parameters_schema(function: ToolFunction) -> dict[str, Any]:
    """A JSON schema for ``function``'s keyword arguments, from its type hints."""
    hints = get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        annotation = hints.get(parameter.name, Any)
        schema = TypeAdapter(annotation).json_schema()
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
        else:
            schema["default"] = parameter.default
        properties[parameter.name] = schema
    return {"type": "object", "properties": properties, "required": required}


def load_tools(modules: Iterable[str]) -> ToolRegistry:
    """Import each module and merge its ``registry``; fail start-up if one is missing."""
    registry = ToolRegistry()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"RT_TOOLS: cannot import {name!r} ({exc})") from None
        found = getattr(module, "registry", None)
        if not isinstance(found, ToolRegistry):
            raise ConfigError(f"RT_TOOLS: {name!r} has no module-level ToolRegistry 'registry'")
        registry.merge(found)
    return registry


def _validate(function: ToolFunction, arguments: dict[str, Any]) -> dict[str, Any]:
    hints = get_type_hints(function)
    names = inspect.signature(function).parameters
    unknown = set(arguments) - set(names)
    if unknown:
        raise TypeError(f"unexpected arguments {sorted(unknown)}")
    return {
        key: TypeAdapter(hints.get(key, Any)).validate_python(value)
        for key, value in arguments.items()
    }


def _error(message: str) -> str:
    return orjson.dumps({"error": message}).decode()
