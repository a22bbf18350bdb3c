"""``python -m xprof_core.aggregator``: the deployment's entry point, kept at this name.

The aggregator itself lives in :mod:`xprof_core.serve.aggregator`.
"""

from xprof_core.serve.aggregator import main

if __name__ == "__main__":
    raise SystemExit(main())
