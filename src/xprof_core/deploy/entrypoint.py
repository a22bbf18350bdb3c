"""The container image's entrypoint: one image, either role.

``python -m xprof_core.deploy.entrypoint ROLE [FLAGS...]`` runs
``python -m xprof_core.<ROLE> FLAGS...`` in the same process, with the flags
passed through untouched (so the Kubernetes ``args`` stay exactly XProf's).
ROLE is ``aggregator`` or ``worker``. deploy/Dockerfile sets ``ENTRYPOINT`` to
``ENTRYPOINT`` below, and the manifests set each container's ``command`` to
``ENTRYPOINT + (ROLE,)``, which a test checks against the Dockerfile.

This module must not import the ``kubernetes`` client: the runtime image does not
install the ``k8s`` extra.
"""

from __future__ import annotations

import importlib.util
import runpy
import signal
import sys
from collections.abc import Sequence
from typing import Final

ENTRYPOINT: Final = ("python", "-m", "xprof_core.deploy.entrypoint")
ROLE_MODULES: Final[dict[str, str]] = {
    "aggregator": "xprof_core.aggregator",
    "worker": "xprof_core.worker",
}
USAGE: Final = (
    "usage: python -m xprof_core.deploy.entrypoint {aggregator,worker} [FLAGS...]\n"
    "Runs `python -m xprof_core.aggregator FLAGS...` or `python -m xprof_core.worker FLAGS...`."
)


def _exit_on_sigterm() -> None:
    """Make SIGTERM end the process unless the role installs its own handler.

    In a container this process is PID 1, and the kernel ignores signals whose
    action is the default for PID 1: without a handler, ``kubectl delete`` would
    wait out the whole grace period and then SIGKILL. A server that wants a
    graceful drain replaces this handler with its own.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the role's module; returns an exit status (2: bad usage, 1: role not installed)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args or args[0] not in ROLE_MODULES:
        got = f"got {args[0]!r}" if args else "got nothing"
        print(f"{USAGE}\nerror: the first argument must be a role, aggregator or worker ({got})", file=sys.stderr)
        return 2
    role, flags = args[0], args[1:]
    module = ROLE_MODULES[role]
    if importlib.util.find_spec(module) is None:
        print(f"error: this xprof-core installation has no {module} module to run the {role}", file=sys.stderr)
        return 1
    _exit_on_sigterm()
    # runpy replaces argv[0] with the module's path and keeps the rest: the role's own parser
    # sees exactly the flags the container was given.
    sys.argv = [module, *flags]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
