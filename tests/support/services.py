"""Throwaway redis-server, nginx (with deploy/nginx.conf) and rt-server processes on free
loopback ports, for the scale-out test; each is stopped by the test that started it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rt_server.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
_START_SECONDS = 60.0


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Return once ``port`` accepts connections (another process's start-up has no event
    to wait on); raise if ``process`` exits first."""
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up ({process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {_START_SECONDS:g} s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Stop ``process`` (``sig``, then SIGKILL after 20 s); its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    root: Path


def start_redis(root: Path) -> Service:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(root)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, process, "redis-server")
    return Service(process, port, root)


def nginx_conf(upstreams: list[int], port: int, root: Path) -> str:
    """deploy/nginx.conf with loopback upstreams, ``port`` and files under ``root``."""
    conf = NGINX_CONF.read_text()
    servers = "".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams
    )
    conf = re.sub(r"(        server rt\d:8080[^\n]*\n)+", servers, conf)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    head = f"daemon off;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
    if os.geteuid() == 0:
        head += "user nobody nogroup;\n" if _has_group("nogroup") else "user nobody;\n"
    return head + conf


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def start_nginx(upstreams: list[int], root: Path) -> Service:
    port = free_port()
    (root / "nginx.conf").write_text(nginx_conf(upstreams, port, root))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, process, "nginx")
    return Service(process, port, root)


def start_rt_server(env: dict[str, str], root: Path) -> Service:
    """``rt-server`` (the console script, as the Dockerfile runs it) with ``env`` added to
    a clean environment (no credentials: the built-in emulator)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    full = base | {"HOST": "127.0.0.1", "PORT": str(port), "SCHED_SLICE_US": "0"} | env
    script = Path(sys.executable).parent / "rt-server"
    log = (root / f"rt-server-{port}.log").open("wb")
    process = subprocess.Popen([str(script)], env=full, cwd=root, stdout=log, stderr=log)
    log.close()
    wait_listening(port, process, "rt-server")
    _wait_healthy(port, process)
    return Service(process, port, root)


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once ``/health`` answers: the lifespan has started (the port is bound before)."""
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rt-server exited during start-up ({process.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"rt-server on {port} was not healthy within {_START_SECONDS:g} s")
