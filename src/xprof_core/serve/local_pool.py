"""The aggregator's own map processes, for when there are no workers.

A fixed number of child processes, each running one map task at a time. Why
not :class:`concurrent.futures.ProcessPoolExecutor`: it cannot stop one task.
A task past its deadline must stop computing (it holds a core and memory), so
its child is killed and replaced; and a child that dies (a crash on a hostile
file) must fail only its own task, where ProcessPoolExecutor marks the whole
pool broken and fails every task of every request.

Children start from a fork server (safe with the aggregator's threads) and
read their files with :func:`~xprof_core.serve.map_task.run_map_task`, like a
worker, so the same roots check, reading and errors apply. Errors come back as
:func:`~xprof_core.errors.error_fields` and are rebuilt as the same class here.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from xprof_core.errors import (
    InternalError,
    MapTimeoutError,
    WorkersUnavailableError,
    XprofError,
    error_fields,
    error_from_fields,
)
from xprof_core.serve.map_task import MapOutput

log = logging.getLogger(__name__)

__all__ = ["ChildPool"]

#: How long a child asked to exit may take before it is killed.
_EXIT_GRACE_S = 1.0
#: How many affinity keys the pool remembers (the child that last ran each).
_AFFINITY_KEYS = 4096


def _child_main(conn: Connection, roots: list[str], max_gunzip_ratio: float | None) -> None:
    """A child's loop: one (tool, url, params) in, one ("ok", MapOutput) or ("error", text, fields) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the aggregator, which stops us
    from xprof_core.serve.map_task import run_map_task
    from xprof_core.storage.logdir import set_max_gunzip_ratio

    if max_gunzip_ratio is not None:
        set_max_gunzip_ratio(max_gunzip_ratio)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        tool, url, params = request
        try:
            reply: tuple[Any, ...] = ("ok", run_map_task(tool, url, params, roots))
        except XprofError as exc:
            reply = ("error", str(exc), error_fields(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in a tool: logged here, an internal error there
            text = f"internal error in {tool} on {url}: {type(exc).__name__}: {exc}"
            print(f"xprof-core map process {os.getpid()}: {text}\n{traceback.format_exc()}", file=sys.stderr)
            reply = ("error", text, {"type": InternalError.__name__})
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


@dataclass(eq=False)
class _Child:
    process: Any  # multiprocessing's forkserver Process
    conn: Connection


class ChildPool:
    """``size`` child processes that map host files under ``roots``; thread-safe."""

    def __init__(self, size: int, roots: Sequence[str], max_gunzip_ratio: float | None = None) -> None:
        self.size = max(1, size)
        self.roots = list(roots)
        self.max_gunzip_ratio = max_gunzip_ratio
        self._ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        self._slots = threading.Semaphore(self.size)
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._affinity: OrderedDict[str, _Child] = OrderedDict()
        self._closed = False

    def _start(self) -> _Child:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_child_main,
            args=(child, self.roots, self.max_gunzip_ratio),
            name="xprof-map",
            daemon=True,
        )
        process.start()
        child.close()
        return _Child(process, parent)

    def _take(self, affinity: str | None = None, deadline: float | None = None) -> _Child:
        with self._lock:
            if self._closed:
                raise WorkersUnavailableError("the aggregator is shutting down")
            preferred = self._affinity.get(affinity) if affinity is not None else None
            # The child that holds this key's work is busy: wait for it (another child would not have it).
            while preferred is not None and preferred in self._busy and not self._closed:
                if deadline is None or not self._freed.wait(max(0.0, deadline - time.monotonic())):
                    break
            if preferred is not None and preferred in self._idle and preferred.process.is_alive():
                self._idle.remove(preferred)
                self._busy.add(preferred)
                return preferred
            while self._idle:
                child = self._idle.pop()
                if child.process.is_alive():
                    self._busy.add(child)
                    return child
                child.conn.close()
        child = self._start()
        with self._lock:
            self._busy.add(child)
        return child

    def _put_back(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
            if not self._closed:
                self._idle.append(child)
                self._freed.notify_all()
                return
        self._stop(child)

    def _kill(self, child: _Child) -> int | None:
        with self._lock:
            self._busy.discard(child)
            self._freed.notify_all()
        child.process.kill()
        child.process.join(5.0)
        child.conn.close()
        code: int | None = child.process.exitcode
        return code

    def _stop(self, child: _Child) -> None:
        with contextlib.suppress(OSError, ValueError):
            child.conn.send(None)
        child.process.join(_EXIT_GRACE_S)
        if child.process.is_alive():
            child.process.kill()
            child.process.join(5.0)
        child.conn.close()

    def run(
        self, tool: str, url: str, params: Mapping[str, str], deadline: float, affinity: str | None = None
    ) -> MapOutput:
        """Map one host; ``deadline`` is a :func:`time.monotonic` time. Raises the task's error,
        :class:`MapTimeoutError` (its child is killed) or :class:`WorkersUnavailableError` (its child died).

        A task with an ``affinity`` key runs in the child that last ran that key when it is idle (a
        shard's segments where its walk is kept), else in any child."""
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise MapTimeoutError(f"no map process came free before the deadline (all {self.size} busy)")
        try:
            child = self._take(affinity, deadline)
            if affinity is not None:
                with self._lock:
                    known = self._affinity.get(affinity)
                    if known is None or not known.process.is_alive():  # the first child to run a key keeps it
                        self._affinity[affinity] = child
                    self._affinity.move_to_end(affinity)
                    while len(self._affinity) > _AFFINITY_KEYS:
                        self._affinity.popitem(last=False)
            try:
                child.conn.send((tool, url, dict(params)))
                answered = child.conn.poll(max(0.0, deadline - time.monotonic()))
                reply = child.conn.recv() if answered else None
            except (EOFError, OSError) as exc:
                code = self._kill(child)
                if self._closed:
                    raise WorkersUnavailableError("the aggregator is shutting down") from None
                why = f"the map process died (exit code {code}): {exc or 'no answer'}"
                raise WorkersUnavailableError(why) from None
            if reply is None:  # (raised out here: a TimeoutError is an OSError)
                self._kill(child)
                raise MapTimeoutError("the map task did not finish within its deadline: its process was stopped")
            self._put_back(child)
        finally:
            self._slots.release()
        if reply[0] == "ok":
            output: MapOutput = reply[1]
            return output
        _, text, fields = reply
        raise error_from_fields(fields, text) or InternalError(text)

    def close(self) -> None:
        """Stop every child: idle ones are asked to exit, busy ones are killed (their tasks fail)."""
        with self._lock:
            self._closed = True
            self._freed.notify_all()
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for child in busy:
            child.process.kill()
        for child in idle:
            self._stop(child)
        for child in busy:
            child.process.join(5.0)
