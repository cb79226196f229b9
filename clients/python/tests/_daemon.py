"""Test support: a real memoryd process and, when asked for, the Firestore emulator.

Readiness is systemd's: memoryd sends READY=1 to the NOTIFY_SOCKET the test owns; no sleeps. After READY=1
the notify socket is drained for the daemon's whole life: memoryd keeps sending STATUS= lines from its I/O
thread with a blocking send, so an unread notify socket (10 datagrams deep) would stall the daemon.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[3]


def memoryd_binary() -> str:
    path = os.environ.get("MEMORYD_BIN") or str(REPO_ROOT / ".build" / "debug" / "memoryd")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"memoryd binary not found at {path}: run `swift build --product memoryd` "
                           f"or set MEMORYD_BIN")
    return path


class Daemon:
    """One memoryd on a private socket and data directory (both kept across restarts)."""

    def __init__(self, args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None,
                 directory: Optional[str] = None) -> None:
        # Socket paths must stay under 108 bytes: a short directory under /tmp.
        self.directory = directory or tempfile.mkdtemp(prefix="mdpy-", dir="/tmp")
        self.socket_path = os.path.join(self.directory, "memoryd.sock")
        self.data_dir = os.path.join(self.directory, "data")
        self.log_path = os.path.join(self.directory, "memoryd.log")
        self.notify_path = os.path.join(self.directory, "notify.sock")
        self.args = list(args or [])
        self.env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self._notify: Optional[socket.socket] = None

    def start(self, timeout: float = 60.0) -> "Daemon":
        self._close_notify()  # a fresh notify socket per start; the previous one's drainer ends
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(self.notify_path)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NOTIFY_SOCKET": self.notify_path}
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [memoryd_binary(), "--socket", self.socket_path, "--data-dir", self.data_dir] + self.args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._notify.settimeout(0.1)
            try:
                msg = self._notify.recv(4096).decode(errors="replace")
            except socket.timeout:
                msg = ""
            if "READY=1" in msg.split("\n"):
                self._notify.settimeout(None)
                threading.Thread(target=_drain, args=(self._notify,), name="notify-drain", daemon=True).start()
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"memoryd exited with status {self.proc.returncode} before READY=1:\n"
                                   f"{self.log()[-4000:]}")
        self.kill()
        raise RuntimeError(f"memoryd did not become ready within {timeout} s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> Optional[int]:
        """Sends ``sig`` and waits for the exit; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc

    def wait(self, timeout: float = 30.0) -> Optional[int]:
        """Waits for an exit already asked for (e.g. by ``signal``) without signalling again."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"memoryd did not exit within {timeout} s:\n{self.log()[-4000:]}")
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _close_notify(self) -> None:
        if self._notify is not None:
            try:
                self._notify.shutdown(socket.SHUT_RDWR)  # wakes the drainer
            except OSError:
                pass
            self._notify.close()
            self._notify = None

    def cleanup(self) -> None:
        if self.proc is not None:
            self.kill()
        self._close_notify()
        shutil.rmtree(self.directory, ignore_errors=True)


def _drain(sock: socket.socket) -> None:
    """Reads and drops notifications until the socket is shut down."""
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


class FirestoreEmulator:
    """``gcloud emulators firestore start`` on a free port, in its own process group."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.directory = tempfile.mkdtemp(prefix="fsemu-", dir="/tmp")
        self.log_path = os.path.join(self.directory, "emulator.log")
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 120.0) -> "FirestoreEmulator":
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise RuntimeError("gcloud is not installed: the firestore backend tests need the Google Cloud "
                               "CLI with its cloud-firestore-emulator component")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Firestore emulator exited with {self.proc.returncode}:\n"
                                   f"{Path(self.log_path).read_text(errors='replace')[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)  # polling the port: the emulator has no readiness notification
        self.stop()
        raise RuntimeError(f"the Firestore emulator did not answer on {self.host} within {timeout} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        # gcloud starts java as a child: end the whole process group, politely first.
        pgid = self.proc.pid
        _killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(pgid, self.proc):
            time.sleep(0.1)
        _killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int, leader: subprocess.Popen) -> bool:
    leader.poll()  # reap the leader so that a zombie does not count
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
