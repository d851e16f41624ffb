"""Shared fixtures: a Realtime API emulator and an rt_server in front of it, on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from tests.support.harness import RunningServer, running_server

API_KEY = "sk-test-emulator-key-0123456789"


def openai_settings(emulator_url: str, **changes: object) -> Settings:
    """Settings for an OpenAI backend pointed at an emulator."""
    settings = Settings(
        backend="openai",
        openai_api_key=API_KEY,
        openai_base_url=f"{emulator_url}/v1",
        limits=Limits(backend_connect_timeout=5.0),
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def azure_settings(emulator_url: str, **changes: object) -> Settings:
    """Settings for an Azure backend (GA path, key auth) pointed at an emulator."""
    settings = Settings(
        backend="azure",
        azure_endpoint=emulator_url,
        azure_deployment="my-realtime",
        azure_api_key=API_KEY,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(EmulatorConfig(api_key=API_KEY)) as running:
        yield running


@pytest.fixture
async def server(emulator: RunningEmulator) -> AsyncIterator[RunningServer]:
    async with running_server(openai_settings(emulator.http_url)) as running:
        yield running


# ------------------------------------------------------------------ nothing skips silently

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that skipped a test fails (`make test-deps` says what is missing), unless
    RT_ALLOW_SKIPS=1 asks for a partial run."""
    if _skipped and os.environ.get("RT_ALLOW_SKIPS") != "1" and not _is_worker(session):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep(
                "=",
                f"{len(_skipped)} tests skipped: the run fails (install what they need with "
                "`make test-deps`, or set RT_ALLOW_SKIPS=1 for a partial run)",
                red=True,
            )


def _is_worker(session: pytest.Session) -> bool:
    return hasattr(session.config, "workerinput")  # xdist: the controller decides
