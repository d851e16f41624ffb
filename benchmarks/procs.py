"""The processes a benchmark runs against: the emulator, rt_server and the floor relay.

Both are started as child processes on free loopback ports, so their CPU and memory can
be read with psutil, and stopped with SIGTERM (uvicorn's graceful exit). Nothing here is
measured; it only starts, waits and stops.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeAlias

import psutil

from rt_server.sched import DEFAULT_US, current_slice_us
from rt_server.serving import free_port

#: How a client reaches the emulator: through rt_server, straight to it, through the
#: floor relay (speaking the Realtime API, as direct), through the reference relay
#: (rt_server's protocol) or through HAProxy (the Realtime API).
Way: TypeAlias = Literal["through", "direct", "relay", "reference", "haproxy"]
ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-bench"
MODEL = "gpt-realtime"


def snapshot(ref: str, into: Path) -> Path:
    """``rt_server`` as committed at ``ref`` (plus these benchmarks), unpacked in ``into``.

    Other engineers edit the working tree while benchmarks run; a snapshot measures one
    commit. Children started with ``root=`` the returned path import rt_server from it.
    """
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "rt_server"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.copytree(ROOT / "benchmarks", into / "benchmarks", dirs_exist_ok=True)
    return into


def describe(ref: str | None) -> str:
    """The commit measured, and whether rt_server/ had uncommitted changes."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref or "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if ref is not None:
        return f"{commit} ({ref}, snapshot)"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "rt_server"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"{commit} (working tree{', rt_server/ modified' if dirty else ''})"


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def busy_cores() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def wait_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) for a second in which the machine is nearly idle.

    Other engineers' test suites share this machine; measuring on top of them only
    measures them. Returns the busy cores seen in the last one-second sample.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = busy_cores()
        time.sleep(1.0)
        busy = busy_cores() - before
        if busy < threshold or time.monotonic() >= deadline:
            return round(busy, 3)


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used, all its threads, exited ones included.

    On Linux it is read from the process's CPU clock, in nanoseconds: user and system time
    (``psutil``) count in clock ticks of 10 ms, which a light process such as the floor
    relay can stay under for a whole short level. The clock id is the kernel's own encoding
    of "the scheduler's clock of process ``pid``" (what ``clock_getcpuclockid`` returns)."""
    if sys.platform == "linux":
        return time.clock_gettime((~pid << 3) | 2)
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Child:
    """A started server process and where it listens."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]  # what the process printed (stdout and stderr)

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.popen.pid)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.popen.pid)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def logged_errors(self) -> int:
        """Lines the process logged at ERROR level or above (loguru's format) so far."""
        self.log.flush()
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.seek(0, os.SEEK_END)
        return sum(1 for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line)

    def log_tail(self, lines: int = 30) -> str:
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.seek(0, os.SEEK_END)
        return "\n".join(text.splitlines()[-lines:])


def _wait_healthy(child: Child, timeout: float = 60.0, *, http: bool = True) -> None:
    """Until ``/health`` answers 200 (``http``), or the port takes a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode} at start-up")
        if not http:
            with suppress(OSError), socket.create_connection(("127.0.0.1", child.port), 1.0):
                return
        with (
            suppress(OSError),
            urllib.request.urlopen(f"{child.http_url}/health", timeout=1.0) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not become healthy in {timeout:g} s")


def _stop(child: Child) -> None:
    if child.popen.poll() is None:
        child.popen.send_signal(signal.SIGTERM)
        try:
            child.popen.wait(10.0)
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait()


@contextmanager
def _child(
    name: str, argv: list[str], env: Mapping[str, str], port: int, root: Path, *, http: bool = True
) -> Iterator[Child]:
    full_env = {**os.environ, **env}
    if root != ROOT:
        full_env["PYTHONPATH"] = str(root)
    with tempfile.TemporaryFile() as log:
        popen = subprocess.Popen(argv, cwd=root, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        child = Child(name, popen, port, log)
        try:
            try:
                _wait_healthy(child, http=http)
            except RuntimeError:
                print(child.log_tail(), file=sys.stderr)
                raise
            yield child
        finally:
            _stop(child)


@contextmanager
def emulator(root: Path = ROOT, *, echo_audio: bool = True) -> Iterator[Child]:
    """The Realtime API emulator at fast pace (``--echo-audio`` for per-frame latency)."""
    port = free_port()
    argv = [sys.executable, "-m", "rt_server.emulator", "--port", str(port)]
    argv += ["--pace", "fast", "--log-level", "WARNING"]
    if echo_audio:
        argv.append("--echo-audio")
    with _child("emulator", argv, {}, port, root) as child:
        yield child


def server_env(emulator_port: int, port: int, **limits: str) -> dict[str, str]:
    """The environment of an rt_server that uses the emulator as its OpenAI backend."""
    return {
        "BACKEND": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{emulator_port}/v1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "MAX_SESSIONS": "5000",
        "MAX_AUDIO_REALTIME_FACTOR": "100",
        "MAX_TEXT_MESSAGES_PER_SECOND": "100000",
        "MAX_TEXT_BYTES_PER_SECOND": "1000000000",
        "IDLE_TIMEOUT_SECONDS": "3600",
        **limits,
    }


@contextmanager
def rt_server(
    emulator_port: int,
    root: Path = ROOT,
    *,
    profile: Path | None = None,
    profiler: str = "cprofile",
    trace: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Child]:
    """rt_server as deployed (the ``rt-server`` console script: uvicorn, one worker).

    ``profile`` runs it under pyinstrument and writes the report there on exit;
    ``trace`` installs :mod:`benchmarks.stamps`, which dump to that file (:func:`dump_stamps`);
    ``env`` adds settings (``BACKEND_SOCKET=sdk``, say) to its environment.
    """
    port = free_port()
    env = {**server_env(emulator_port, port), **(env or {})}
    if profile is None and trace is None:
        argv = [str(Path(sys.executable).parent / "rt-server")]
    else:
        argv = [sys.executable, "-m", "benchmarks.server"]
        if profile is not None:
            argv += ["--profile", str(profile), "--profiler", profiler]
        if trace is not None:
            argv += ["--trace", str(trace)]
    with _child("rt_server", argv, env, port, root) as child:
        yield child


@contextmanager
def relay(emulator_port: int, root: Path = ROOT, *, slice_us: int = 0) -> Iterator[Child]:
    """The floor (:mod:`benchmarks.relay`): a byte relay in front of the emulator, asking
    for a ``slice_us`` scheduler slice (0: the kernel's default)."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.relay", "--port", str(port)]
    argv += ["--upstream", str(emulator_port), "--slice-us", str(slice_us)]
    with _child("relay", argv, {}, port, root) as child:
        yield child


@contextmanager
def reference(emulator_port: int, root: Path = ROOT, *, slice_us: int = 0) -> Iterator[Child]:
    """The reference relay (:mod:`benchmarks.reference`): rt_server's voice work on picows
    both sides, in callbacks, asking for the same scheduler slice as rt_server."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.reference", "--port", str(port)]
    argv += ["--upstream", str(emulator_port), "--slice-us", str(slice_us)]
    with _child("reference", argv, {}, port, root, http=False) as child:
        yield child


_HAPROXY = """global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend clients
    bind 127.0.0.1:{port}
    default_backend emulator
backend emulator
    server emulator 127.0.0.1:{upstream}
"""


@contextmanager
def haproxy(emulator_port: int, root: Path = ROOT) -> Iterator[Child]:
    """The physical floor: HAProxy (compiled, TCP mode) in front of the emulator, one
    process in the foreground (the Debian package ``haproxy``)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "haproxy.cfg"
        config.write_text(_HAPROXY.format(port=port, upstream=emulator_port))
        argv = [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(config)]
        with _child("haproxy", argv, {}, port, root) as child:
            yield child


@dataclass(frozen=True)
class Pair:
    """An emulator with rt_server, the floor relay, the reference relay and HAProxy in
    front of it, shared by the scenarios of one run."""

    emulator: Child
    server: Child
    relay: Child
    reference: Child | None = None  # started for the voice scenario only
    haproxy: Child | None = None

    @property
    def ports(self) -> dict[Way, int]:
        """Where each way connects."""
        ports: dict[Way, int] = {
            "through": self.server.port,
            "direct": self.emulator.port,
            "relay": self.relay.port,
        }
        if self.reference is not None:
            ports["reference"] = self.reference.port
        if self.haproxy is not None:
            ports["haproxy"] = self.haproxy.port
        return ports

    @property
    def relays(self) -> list[Child]:
        """What runs in rt_server's place: the floor relay, and the reference relay and
        HAProxy when they were started."""
        return [c for c in (self.relay, self.reference, self.haproxy) if c is not None]


@contextmanager
def pair(
    root: Path = ROOT,
    *,
    profile: Path | None = None,
    profiler: str = "cprofile",
    trace: Path | None = None,
    env: Mapping[str, str] | None = None,
    voice: bool = True,
) -> Iterator[Pair]:
    """The shared processes; ``voice``: with the reference relay and HAProxy too."""
    with (
        emulator(root) as emu,
        rt_server(
            emu.port,
            root,
            profile=profile,
            profiler=profiler,
            trace=trace,
            env=env,
        ) as srv,
        relay(emu.port, root, slice_us=slice_of(env)) as floor,
        ExitStack() as stack,
    ):
        if not voice:
            yield Pair(emu, srv, floor)
            return
        best = stack.enter_context(reference(emu.port, root, slice_us=slice_of(env)))
        compiled = stack.enter_context(haproxy(emu.port, root))
        yield Pair(emu, srv, floor, best, compiled)


def slice_of(env: Mapping[str, str] | None) -> int:
    """The scheduler slice rt_server asks for with ``env`` (``SCHED_SLICE_US``, else its
    default): the floor relay asks for the same, so both run on equal terms."""
    value = (env or {}).get("SCHED_SLICE_US")
    return int(value) if value else DEFAULT_US


def slices(pair: Pair) -> str:
    """The scheduler slice each process runs with, read from the kernel, for the summary."""

    def of(pid: int) -> str:
        us = current_slice_us(pid)
        return "not reported by this kernel" if us is None else f"{us / 1000:g} ms"

    return (
        f"rt_server {of(pair.server.popen.pid)}, the relay {of(pair.relay.popen.pid)}, "
        f"the emulator {of(pair.emulator.popen.pid)}, the load generator {of(os.getpid())}"
    )


def pin(pair: Pair, harness: int = 0) -> str:
    """Give rt_server (and the relays, which run in its place) the last CPU to itself, and
    the emulator and the ``harness`` process (this one by default; its load generator
    workers inherit its CPUs) the others:
    rt_server on a core of its own, as deployed, with its backend and clients elsewhere.
    Without pinning the scheduler stacks a woken emulator onto rt_server's CPU. Returns
    the placement, for the summary."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    own, rest = {cpus[-1]}, set(cpus[:-1])
    for child in (pair.server, *pair.relays):
        child.process.cpu_affinity(sorted(own))
    pair.emulator.process.cpu_affinity(sorted(rest))
    os.sched_setaffinity(harness, rest)
    return f"rt_server and the relays on CPU {cpus[-1]}; emulator and load generator on CPU " + (
        ", ".join(str(c) for c in sorted(rest))
    )


def dump_stamps(server: Child, path: Path, wait: float = 10.0) -> list[tuple[int, str]]:
    """Ask rt_server (started with ``trace=path``) for the stamps it took so far. Call it
    between turns: it blocks until rt_server's signal handler has written the file."""
    from benchmarks import stamps

    path.unlink(missing_ok=True)
    server.popen.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + wait
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"rt_server wrote no stamps to {path} in {wait:g} s")
        time.sleep(0.01)
    return stamps.read(path)


@contextmanager
def using(shared: Pair | None, root: Path = ROOT) -> Iterator[Pair]:
    """``shared`` when given, else a pair of this scenario's own."""
    if shared is not None:
        yield shared
        return
    with pair(root) as own:
        yield own


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": sys.platform,
    }
