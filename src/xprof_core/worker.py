"""``python -m xprof_core.worker``: the deployment's entry point, kept at this name.

The worker itself lives in :mod:`xprof_core.serve.worker`.
"""

from xprof_core.serve.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
