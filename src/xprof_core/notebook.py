"""Notebooks: ``xprof_core.show(run_or_path)`` opens the web UI of a run inline.

``show`` starts a local aggregator for the run's logdir (in a background
thread of this process, bound to 127.0.0.1 on a free port) or reuses the one
already serving that logdir, and returns an IPython ``IFrame`` of the UI at
the run's overview. ``serve`` gives the server itself; ``stop_all`` stops
every server this process started. An :class:`~xprof_core.XSpace` and tool
results render as HTML tables on their own (``_repr_html_``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from xprof_core.storage.logdir import HOST_SUFFIXES, Logdir, MissingExtraError


@dataclass
class LocalServer:
    """An aggregator serving one logdir from a background thread of this process."""

    logdir: str
    url: str
    port: int
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stop: asyncio.Event = field(repr=False)
    _aggregator: Any = field(repr=False)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def view_url(self, run: str, tool: str = "overview_page") -> str:
        """The UI's URL of a run's tool view."""
        return f"{self.url}#run={quote(run, safe='')}&tool={quote(tool, safe='')}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)
        self._aggregator.executor.close()


_servers: dict[str, LocalServer] = {}
_lock = threading.Lock()


def serve(logdir: str, port: int = 0, local_workers: int | None = None) -> LocalServer:
    """The local aggregator serving ``logdir``: the running one, or a new one on ``port`` (0: a free port)."""
    from aiohttp import web

    from xprof_core.serve.aggregator import Aggregator, AggregatorConfig

    key = os.path.realpath(logdir) if "://" not in logdir else logdir
    with _lock:
        running = _servers.get(key)
        if running is not None and running.alive:
            return running
        aggregator = Aggregator(
            AggregatorConfig(logdir=logdir, port=port, host="127.0.0.1", local_workers=local_workers)
        )
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        holder: dict[str, Any] = {}

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def main() -> None:
                stop = asyncio.Event()
                holder["stop"] = stop
                runner = web.AppRunner(aggregator.app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", port)
                try:
                    await site.start()
                    holder["port"] = runner.addresses[0][1]
                except Exception as exc:  # noqa: BLE001 - reported to the caller below
                    holder["error"] = exc
                    ready.set()
                    await runner.cleanup()
                    return
                ready.set()
                await stop.wait()
                await runner.cleanup()

            loop.run_until_complete(main())
            loop.close()

        thread = threading.Thread(target=run, name=f"xprof-core aggregator {logdir}", daemon=True)
        thread.start()
        if not ready.wait(timeout=60):
            raise TimeoutError("the local aggregator did not start within 60 s")
        if "error" in holder:
            raise holder["error"]
        bound = int(holder["port"])
        server = LocalServer(logdir, f"http://127.0.0.1:{bound}/", bound, loop, thread, holder["stop"], aggregator)
        _servers[key] = server
        return server


def stop_all() -> None:
    """Stop every local aggregator this process started."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


def locate(target: Any, run: str | None = None) -> tuple[str, str]:
    """(logdir, run name) of a host file, a session or run folder, a logdir (with ``run``) or ``(logdir, run)``."""
    if isinstance(target, tuple) and len(target) == 2:
        return str(target[0]), str(target[1])
    path = str(target)
    if path.endswith(HOST_SUFFIXES) or os.path.isfile(path):
        session = os.path.dirname(os.path.abspath(path))
        profile = os.path.dirname(session)
        if os.path.basename(profile) == "profile" and os.path.basename(os.path.dirname(profile)) == "plugins":
            logdir = os.path.dirname(os.path.dirname(profile))
            for r in Logdir(logdir).runs():
                if r.session == os.path.basename(session) and any(
                    h.url.endswith(os.path.basename(path)) for h in r.hosts
                ):
                    return logdir, r.name
        logdir = session  # a session folder served alone: one run named after it
        path = logdir
    runs = Logdir(path).runs()
    if not runs:
        raise FileNotFoundError(f"no profiles under {path}")
    if run is not None:
        if run not in [r.name for r in runs]:
            raise FileNotFoundError(f"no run {run!r} in {path}; runs: {', '.join(r.name for r in runs)}")
        return path, run
    return path, runs[0].name


def show(
    target: Any,
    run: str | None = None,
    tool: str = "overview_page",
    width: str | int = "100%",
    height: int = 800,
    port: int = 0,
) -> Any:
    """An IFrame of the web UI at a run's ``tool`` view (default: the overview).

    ``target`` is a host file, a session or run folder, a logdir (the newest
    run, or ``run``) or ``(logdir, run)``. The local aggregator for that logdir
    is started on first use and reused after. Needs IPython
    (``pip install 'xprof-core[notebook]'``).
    """
    try:
        from IPython.display import IFrame
    except ImportError as exc:
        raise MissingExtraError(f"show() needs IPython: pip install 'xprof-core[notebook]' ({exc})") from exc
    logdir, run_name = locate(target, run)
    server = serve(logdir, port=port)
    return IFrame(server.view_url(run_name, tool), width=width, height=height)


__all__ = ["LocalServer", "locate", "serve", "show", "stop_all"]
