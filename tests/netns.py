"""Network namespaces for tests: a private loopback and a private /etc/hosts.

A test that needs cluster DNS names (``svc.ns.svc.cluster.local``) or fixed ports
(XProf's deployment binds 9999, 8891, 10000, 50051) gets its own namespace, so it
never collides with the host or with other tests::

    with network_namespace() as ns:
        ns.set_hosts({"xprof-worker-service.default.svc.cluster.local": ["127.0.1.1", "127.0.1.2"]})
        proc = ns.popen([sys.executable, "-m", "xprof_core.worker", "--host", "127.0.1.1"], env=env)

Inside a namespace, ``lo`` carries all of 127.0.0.0/8, so each process can bind its
own loopback address the way each Kubernetes pod has its own IP. ``ip netns exec``
bind-mounts every file of ``/etc/netns/<ns>/`` over the same name in ``/etc`` for the
process it starts: ``hosts`` plays the cluster DNS, and ``host.conf`` says
``multi on`` so glibc's getaddrinfo returns every address of a name, as a headless
Service's DNS record does. ``ip netns exec`` execs the command (no fork), so the
Popen's pid is the process itself and signals reach it directly.

Requires root and iproute2's ``ip``; otherwise the calling test is skipped.
Every namespace gets a unique name, and ``close`` (run by the context manager even
when the test fails) stops every process started in it, deletes the namespace and
removes ``/etc/netns/<ns>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

NETNS_ETC = Path("/etc/netns")


def skip_unless_netns_available() -> None:
    """Skip the calling test, saying why, when this machine cannot make network namespaces."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("network namespaces need root (`ip netns add`); run the tests as root to include these")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` command is not installed; it creates the network namespaces")


def hosts_file(names: Mapping[str, Sequence[str]]) -> str:
    """The text of an /etc/hosts mapping each name to its addresses (one line per address)."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    for name, addresses in names.items():
        lines += [f"{address} {name}" for address in addresses]
    return "\n".join(lines) + "\n"


class NetworkNamespace:
    """One network namespace with ``lo`` up, its own hosts file, and the processes started in it."""

    def __init__(self, prefix: str = "xprof-t") -> None:
        # Unique per test process and call: several test sessions may share this machine.
        self.name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.etc = NETNS_ETC / self.name
        self.procs: list[subprocess.Popen[Any]] = []
        self._created = False
        self._made_etc_root = False  # whether this namespace created /etc/netns itself

    def create(self) -> None:
        """Add the namespace, bring ``lo`` up, write its hosts and host.conf. Skips when ``ip`` refuses."""
        done = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot create a network namespace: `ip netns add` says {done.stderr.strip()!r}")
        self._created = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)
        self._made_etc_root = not NETNS_ETC.exists()
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "host.conf").write_text("multi on\n")
        self.set_hosts({})

    def set_hosts(self, names: Mapping[str, Sequence[str]]) -> None:
        """Make ``names`` resolve to these addresses inside the namespace, for running processes too.

        The file is rewritten in place, never replaced: a running process sees
        ``/etc/hosts`` through a bind mount of this file's inode, so a new inode
        (write-then-rename) would stay invisible to it. glibc reads the file afresh
        on every lookup, so the next resolution finds the new addresses.
        """
        with open(self.etc / "hosts", "w") as f:
            f.write(hosts_file(names))

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; ``close`` stops it if the test has not."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.command(argv), **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the namespace to completion."""
        return subprocess.run(self.command(argv), **kwargs)

    @staticmethod
    def stop(*procs: subprocess.Popen[Any], timeout_s: float = 20.0) -> list[int]:
        """SIGTERM each process (the servers drain), SIGKILL what is left after ``timeout_s``; the exit statuses.

        One SIGTERM each, all sent before any wait: a second one could land while Python
        is finalising, after it has put back the default handler, and kill a clean exit.
        """
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return [proc.returncode for proc in procs]

    def close(self) -> None:
        """Stop every process started here, delete the namespace and /etc/netns/<ns>. Safe to call twice."""
        self.stop(*self.procs)
        for proc in self.procs:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._created:
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
            self._created = False
        shutil.rmtree(self.etc, ignore_errors=True)
        if self._made_etc_root:
            with contextlib.suppress(OSError):  # still in use by another namespace: leave it
                NETNS_ETC.rmdir()


@contextmanager
def network_namespace(prefix: str = "xprof-t") -> Iterator[NetworkNamespace]:
    """A fresh namespace for the ``with`` block, torn down on the way out whatever happened."""
    skip_unless_netns_available()
    ns = NetworkNamespace(prefix)
    try:
        ns.create()
        yield ns
    finally:
        ns.close()
