#!/usr/bin/env python3
"""Scale a real PyTorch Kineto trace to a target size by replicating its events in time.

Each copy of the trace's events is shifted by the trace's span (plus a gap),
so copies follow one another like further training steps: ``ProfilerStep#N``
is renumbered, and the ids that link events (``correlation``, ``External id``,
flow ``id``) are offset per copy so they stay unique. Timestamps are kept as
the exact decimals the source has (no float round trip). Metadata events
(``ph: M``) and top-level keys are written once.

    python3 scripts/scale_kineto_trace.py SRC.json[.gz] OUT.json --size-mb 1100 [--gzip]

Events are written from text templates, so a 1 GB trace takes seconds and
little memory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

_STEP = re.compile(r"^ProfilerStep#(\d+)$")
_ID_ARGS = ("correlation", "External id", "external id")


def _load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    doc = json.loads(raw, parse_float=Decimal)
    return doc if isinstance(doc, dict) else {"traceEvents": doc}


def _plain(value: Any) -> Any:
    """Decimals back to floats (their shortest repr is the source's digits), recursively."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _template(event: dict[str, Any]) -> tuple[list[str], list[tuple[str, Any]]]:
    """The event as JSON text cut at its variable fields: (text parts, (kind, base value) per gap)."""
    slots: list[tuple[str, Any]] = []
    ts = event["ts"]
    ev = _plain(event)

    def mark(kind: str, value: Any) -> str:
        slots.append((kind, value))
        return f"\x00{len(slots) - 1}\x00"

    ev["ts"] = mark("ts", ts)
    if isinstance(ev.get("name"), str) and _STEP.match(ev["name"]):
        ev["name"] = mark("step", int(_STEP.match(ev["name"]).group(1)))  # type: ignore[union-attr]
    if isinstance(ev.get("id"), int):
        ev["id"] = mark("id", ev["id"])
    args = ev.get("args")
    if isinstance(args, dict):
        args = dict(args)
        for key in _ID_ARGS:
            if isinstance(args.get(key), int) and args[key] > 0:
                args[key] = mark("id", args[key])
        ev["args"] = args
    # json.dumps writes each mark as "\u0000<n>\u0000": cut the text there, quotes included.
    parts = re.split(r'"\\u0000(\d+)\\u0000"', json.dumps(ev))
    pieces = parts[0::2]
    order = [slots[int(i)] for i in parts[1::2]]
    return pieces, order


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size-mb", type=float, default=1100.0, help="stop once the output reaches this size")
    ap.add_argument("--gzip", action="store_true", help="write gzip (level 1)")
    args = ap.parse_args()

    doc = _load(args.source)
    events = doc.pop("traceEvents")
    meta = [e for e in events if e.get("ph") == "M"]
    timed = [e for e in events if e.get("ph") != "M" and "ts" in e]
    start = min(Decimal(e["ts"]) for e in timed)
    end = max(Decimal(e["ts"]) + Decimal(e.get("dur", 0)) for e in timed)
    span = end - start + Decimal(1000)  # one copy after the other, 1 ms apart
    steps = sorted({int(m.group(1)) for e in timed if (m := _STEP.match(str(e.get("name", ""))))})
    step_stride = (max(steps) - min(steps) + 1) if steps else 0
    id_stride = 1 + max(
        [int(e["id"]) for e in timed if isinstance(e.get("id"), int)]
        + [int(e["args"][k]) for e in timed for k in _ID_ARGS if isinstance(e.get("args", {}).get(k), int)]
        + [0]
    )
    templates = [_template(e) for e in timed]
    target = int(args.size_mb * 1e6)
    sink = (
        gzip.open(args.out, "wt", compresslevel=1, encoding="utf-8")  # noqa: SIM115 - closed by the with below
        if args.gzip
        else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    )
    written = 0
    copies = 0
    with sink as out:
        head = json.dumps(_plain(doc))[:-1]
        out.write(head + (", " if doc else "") + '"traceEvents": [\n')
        first = True
        for e in meta:
            out.write(("" if first else ",\n") + json.dumps(_plain(e)))
            first = False
        while written < target:
            shift = span * copies
            chunk = []
            for pieces, slots in templates:
                values = []
                for kind, base in slots:
                    if kind == "ts":
                        values.append(format(Decimal(base) + shift, "f"))
                    elif kind == "step":
                        values.append(json.dumps(f"ProfilerStep#{base + step_stride * copies}"))
                    else:
                        values.append(str(base + id_stride * copies))
                text = pieces[0] + "".join(v + p for v, p in zip(values, pieces[1:], strict=True))
                chunk.append(text)
            block = ("" if first else ",\n") + ",\n".join(chunk)
            first = False
            out.write(block)
            written += len(block)
            copies += 1
        out.write("\n]}\n")
    print(
        f"wrote {args.out}: {copies} copies of {len(timed):,} events, {written / 1e6:,.0f} MB of events",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
