"""Record every tool's output on every test profile, as the oracle for rewrites of the tools.

Usage::

    PYTHONPATH=src python3 scripts/record_tool_outputs.py [--out tests/data/oracle/tool_outputs.json.gz]
        [--only REGEX]

For each profile (the real files in ``../shared/data/real``, the JAX files in
``tests/data/jax`` and the H200 files in ``../shared/data/h200``) and each
table tool, the tool's JSON result is stored whole; for ``trace_viewer`` a
SHA-256 of the JSON bytes of two calls (the default view and every event with
``resolution=0``) and their event counts. Keys are ``<source>/<path>|<tool>``
with ``<source>`` one of ``real``, ``jax``, ``h200``. The test
``tests/test_tool_outputs.py`` compares the current tools with this file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TRACE_CALLS = {"default": {}, "every_event": {"resolution": "0"}}


def profiles() -> dict[str, Path]:
    """Oracle key prefix -> file, for every profile the oracle covers that exists here."""
    out: dict[str, Path] = {}
    real = SHARED / "real"
    if real.is_dir():
        for p in sorted(real.rglob("*.xplane.pb")):
            if "corrupted" not in p.parts:
                out[f"real/{p.relative_to(real).as_posix()}"] = p
    for p in sorted((ROOT / "tests" / "data" / "jax").glob("*.xplane.pb")):
        out[f"jax/{p.name}"] = p
    h200 = SHARED / "h200"
    if h200.is_dir():
        for p in sorted(h200.glob("*.xplane.pb.gz")):
            out[f"h200/{p.name}"] = p
    return out


def trace_digest(path: Path, params: dict[str, str]) -> dict[str, object]:
    from xprof_core.execute import run_tool_json

    data = run_tool_json("trace_viewer", str(path), **params)
    doc = orjson.loads(data)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "returnedEventsSize": doc["returnedEventsSize"],
        "droppedEvents": doc["droppedEvents"]["count"],
    }


def record(only: str | None = None) -> dict[str, object]:
    """Every (profile, tool) output, or those whose ``<key>|<tool>`` matches the regex ``only``."""
    import re

    from xprof_core.execute import run_tool_json
    from xprof_core.tools import tool_names

    out: dict[str, object] = {}
    for key, path in profiles().items():
        for tool in tool_names():
            if only is not None and not re.search(only, f"{key}|{tool}"):
                continue
            if tool == "trace_viewer":
                out[f"{key}|{tool}"] = {name: trace_digest(path, p) for name, p in TRACE_CALLS.items()}
            else:
                out[f"{key}|{tool}"] = orjson.loads(run_tool_json(tool, str(path)))
        print(key, file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "oracle" / "tool_outputs.json.gz"))
    parser.add_argument("--only", default=None, help="record only the cases whose '<key>|<tool>' matches this regex")
    args = parser.parse_args(argv)
    data = orjson.dumps(record(args.only), option=orjson.OPT_SORT_KEYS)
    Path(args.out).write_bytes(gzip.compress(data, 9, mtime=0))
    print(f"wrote {args.out} ({len(data):,} bytes of JSON)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
