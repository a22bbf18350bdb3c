"""diff: compare two runs (A and B) from the results of the op-stats family of tools.

The inputs are the public results of ``overview_page``, ``hlo_stats``,
``framework_op_stats`` and ``kernel_stats`` for each side (any may be
missing); nothing here reads a profile. The result holds:

* ``steps``: the step-time distribution of each side (count, mean, std,
  min, p50, p90, p99, max, in ms) and the change of each figure;
* ``breakdown``: the step-time breakdown side by side (ms per step and share);
* ``hlo_ops``, ``framework_ops``, ``kernels``: every op of A and B aligned,
  with occurrences, total, self and average time on each side, per-step time,
  the delta and the ratio, and whether the op is new in B or vanished from A;
* ``top_regressions`` / ``top_improvements``: the ops whose time per step
  grew or shrank most, ranked by absolute delta;
* ``verdict``: one line, e.g. "B is 7.3% slower per step (mean 10.2 ms ->
  10.9 ms); 80% of it is in 3 ops: ...", and its figures in ``summary``.

Alignment. Ops pair up by a *fingerprint* (what the op is: its kind, its
framework op, its HLO text with instruction numbers removed, its launch shape
for kernels) plus its name without the numeric suffix that a compiler adds
(``fusion.123``, ``loop_add_fusion_2``). Within one such group the ops pair
in suffix order, because XLA numbers instructions in creation order and that
order survives renumbering when another op is added or removed. Ops left
over pair by exact name as a second pass; the rest are new or vanished.
``matched_by`` says which rule paired a row ("name" when both names are
equal).

Per-step times divide an op's total time by its run's step count (1 when the
run has no steps), so runs with different step counts compare fairly; a
difference is B minus A, and a ratio is B over A.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xprof_core.errors import ParamError
from xprof_core.tools.datatable import Column, datatable

VERSION = 1
#: The tools whose results a diff reads, per side.
INPUT_TOOLS = ("overview_page", "hlo_stats", "framework_op_stats", "kernel_stats")
#: Op levels in the result, in the order the primary level is chosen.
LEVELS = ("hlo_ops", "framework_ops", "kernels")
METRICS = ("mean", "p50", "p90", "p99")
DEFAULT_TOP = 10
#: The verdict names the fewest ops that explain this share of the step-time change (at most MAX_NAMED).
EXPLAIN_SHARE = 0.8
MAX_NAMED = 5
#: Changes below this many percent read as "the same".
SAME_PCT = 1.0

_SUFFIX = re.compile(r"^(.*?)[._](\d+)$")
_NUMBERED_IDENT = re.compile(r"([A-Za-z_][\w\-]*)\.\d+\b")


def split_suffix(name: str) -> tuple[str, int]:
    """(name without its numeric suffix, the suffix or -1): ``fusion.12`` -> (``fusion``, 12)."""
    m = _SUFFIX.match(name)
    if m is None or not m.group(1):
        return name, -1
    return m.group(1), int(m.group(2))


def normalize_hlo_text(text: str) -> str:
    """HLO text with instruction numbers removed (``%fusion.12`` -> ``%fusion``); shapes are kept."""
    return _NUMBERED_IDENT.sub(r"\1", text)


@dataclass
class OpRow:
    """One op of one side, reduced to what alignment and the diff need (times in µs)."""

    name: str
    fingerprint: tuple[str, ...]
    category: str
    context: str  # the framework op of an HLO op, the HLO op of a kernel, the host/device of a framework op
    occurrences: int
    total_us: float
    self_us: float

    @property
    def group(self) -> tuple[Any, ...]:
        return (split_suffix(self.name)[0], *self.fingerprint)

    @property
    def order(self) -> tuple[int, float]:
        return (split_suffix(self.name)[1], -self.total_us)


@dataclass
class Pair:
    a: OpRow | None
    b: OpRow | None
    matched_by: str = ""

    @property
    def name(self) -> str:
        row = self.b if self.b is not None else self.a
        assert row is not None
        return row.name

    @property
    def status(self) -> str:
        if self.a is None:
            return "new"
        if self.b is None:
            return "vanished"
        return "both"


def _columns(table: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """A DataTable as {column id: values}; empty when absent."""
    if not table or "cols" not in table:
        return {}
    ids = [c["id"] for c in table["cols"]]
    out: dict[str, list[Any]] = {cid: [] for cid in ids}
    for row in table["rows"]:
        for cid, cell in zip(ids, row["c"], strict=True):
            out[cid].append(cell.get("v"))
    return out


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def hlo_rows(result: Mapping[str, Any] | None) -> list[OpRow]:
    """OpRows of an ``hlo_stats`` result."""
    cols = _columns((result or {}).get("hlo_stats"))
    out = []
    for i, name in enumerate(cols.get("hlo_op_name", [])):
        module = split_suffix(_text(cols["hlo_module"][i]))[0] if "hlo_module" in cols else ""
        category = _text(cols.get("category", [""] * (i + 1))[i])
        tf_op = _text(cols.get("tf_op_name", [""] * (i + 1))[i])
        text = normalize_hlo_text(_text(cols.get("hlo_op_expression", [""] * (i + 1))[i]))
        where = _text(cols.get("host_or_device", [""] * (i + 1))[i])
        out.append(
            OpRow(
                _text(name),
                (module, category, tf_op, text, where),
                category,
                tf_op,
                int(_num(cols["occurrences"][i])),
                _num(cols["total_time"][i]),
                _num(cols["total_self_time"][i]),
            )
        )
    return out


def framework_rows(result: Mapping[str, Any] | None) -> list[OpRow]:
    """OpRows of a ``framework_op_stats`` result."""
    cols = _columns((result or {}).get("framework_op_stats"))
    out = []
    for i, name in enumerate(cols.get("operation", [])):
        kind = _text(cols["type"][i])
        where = _text(cols["host_or_device"][i])
        out.append(
            OpRow(
                _text(name),
                (kind, where),
                kind,
                where,
                int(_num(cols["occurrences"][i])),
                _num(cols["total_time"][i]),
                _num(cols["total_self_time"][i]),
            )
        )
    return out


def kernel_rows(result: Mapping[str, Any] | None) -> list[OpRow]:
    """OpRows of a ``kernel_stats`` result (a kernel's self time is its total time)."""
    cols = _columns((result or {}).get("kernel_stats"))
    out = []
    for i, name in enumerate(cols.get("kernel_name", [])):
        op = _text(cols["op_name"][i])
        dims = (_text(cols["block_dim"][i]), _text(cols["grid_dim"][i]))
        total = _num(cols["total_duration_us"][i])
        out.append(
            OpRow(
                _text(name), (split_suffix(op)[0], *dims), "kernel", op, int(_num(cols["occurrences"][i])), total, total
            )
        )
    return out


def align(rows_a: Sequence[OpRow], rows_b: Sequence[OpRow]) -> list[Pair]:
    """Pair the ops of A and B (see the module docstring); every row appears in exactly one pair."""
    groups: dict[tuple[Any, ...], tuple[list[OpRow], list[OpRow]]] = {}
    for side, rows in ((0, rows_a), (1, rows_b)):
        for r in rows:
            groups.setdefault(r.group, ([], []))[side].append(r)
    pairs: list[Pair] = []
    left_a: list[OpRow] = []
    left_b: list[OpRow] = []
    for ga, gb in groups.values():
        ga.sort(key=lambda r: r.order)
        gb.sort(key=lambda r: r.order)
        for ra, rb in zip(ga, gb, strict=False):
            pairs.append(Pair(ra, rb, "name" if ra.name == rb.name else "fingerprint"))
        left_a.extend(ga[len(gb) :])
        left_b.extend(gb[len(ga) :])
    by_name: dict[str, list[OpRow]] = {}
    for r in left_b:
        by_name.setdefault(r.name, []).append(r)
    for ra in left_a:
        same = by_name.get(ra.name)
        if same:
            pairs.append(Pair(ra, same.pop(0), "name"))
        else:
            pairs.append(Pair(ra, None))
    pairs.extend(Pair(None, rb) for rest in by_name.values() for rb in rest)
    return pairs


# --- steps ---


def step_times_ms(overview: Mapping[str, Any] | None) -> list[float]:
    """Step times (ms) of an ``overview_page`` result, in step order."""
    cols = _columns((overview or {}).get("step_table"))
    return [_num(v) for v in cols.get("steptime_ms", [])]


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of sorted values."""
    n = len(sorted_values)
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, std (population), min, p50, p90, p99, max of step times (ms); None when empty."""
    if not values:
        return {"count": 0, **{k: None for k in ("mean", "std", "min", "p50", "p90", "p99", "max")}}
    s = sorted(values)
    mean = sum(s) / len(s)
    std = math.sqrt(sum((v - mean) ** 2 for v in s) / len(s))
    return {
        "count": len(s),
        "mean": mean,
        "std": std,
        "min": s[0],
        "p50": _percentile(s, 50),
        "p90": _percentile(s, 90),
        "p99": _percentile(s, 99),
        "max": s[-1],
    }


def breakdown_ms(overview: Mapping[str, Any] | None) -> dict[str, float]:
    """Average ms per step of each step-time category (the ``*_ms`` columns of the step table)."""
    cols = _columns((overview or {}).get("step_table"))
    n = len(cols.get("steptime_ms", []))
    out: dict[str, float] = {}
    for cid, values in cols.items():
        if cid.endswith("_ms") and cid != "steptime_ms" and n:
            out[cid[: -len("_ms")]] = sum(_num(v) for v in values) / n
    return out


# --- the diff ---


def _ratio(b: float, a: float) -> float | None:
    return b / a if a > 0 else None


def _pct_change(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0:
        return None
    return (b - a) / a * 100.0


@dataclass
class Side:
    """One side's inputs, reduced."""

    label: str
    results: Mapping[str, Any]
    steps_ms: list[float] = field(init=False)
    levels: dict[str, list[OpRow]] = field(init=False)

    def __post_init__(self) -> None:
        self.steps_ms = step_times_ms(self.results.get("overview_page"))
        self.levels = {
            "hlo_ops": hlo_rows(self.results.get("hlo_stats")),
            "framework_ops": framework_rows(self.results.get("framework_op_stats")),
            "kernels": kernel_rows(self.results.get("kernel_stats")),
        }

    @property
    def step_divisor(self) -> int:
        return max(len(self.steps_ms), 1)


_OP_COLUMNS: list[Column] = [
    ("name", "Op", "string"),
    ("status", "Status", "string"),
    ("matched_by", "Matched by", "string"),
    ("name_a", "Name in A", "string"),
    ("name_b", "Name in B", "string"),
    ("category", "Category", "string"),
    ("context", "Context", "string"),
    ("occurrences_a", "Occurrences A", "number"),
    ("occurrences_b", "Occurrences B", "number"),
    ("total_us_a", "Total A (us)", "number"),
    ("total_us_b", "Total B (us)", "number"),
    ("self_us_a", "Self A (us)", "number"),
    ("self_us_b", "Self B (us)", "number"),
    ("avg_us_a", "Avg A (us)", "number"),
    ("avg_us_b", "Avg B (us)", "number"),
    ("per_step_us_a", "Self per step A (us)", "number"),
    ("per_step_us_b", "Self per step B (us)", "number"),
    ("delta_per_step_us", "Delta self per step (us)", "number"),
    ("delta_total_us", "Delta total (us)", "number"),
    ("ratio", "Ratio B/A", "number"),
]

_TOP_COLUMNS: list[Column] = [
    ("rank", "Rank", "number"),
    ("name", "Op", "string"),
    ("status", "Status", "string"),
    ("name_a", "Name in A", "string"),
    ("per_step_us_a", "Self per step A (us)", "number"),
    ("per_step_us_b", "Self per step B (us)", "number"),
    ("delta_per_step_us", "Delta self per step (us)", "number"),
    ("ratio", "Ratio B/A", "number"),
    ("share_of_change_pct", "Share of the step-time change (%)", "number"),
]


@dataclass
class PairFigures:
    pair: Pair
    per_step_a: float
    per_step_b: float

    @property
    def delta(self) -> float:
        return self.per_step_b - self.per_step_a


def _figures(pairs: Sequence[Pair], a: Side, b: Side) -> list[PairFigures]:
    out = [
        PairFigures(
            p,
            (p.a.self_us / a.step_divisor) if p.a else 0.0,
            (p.b.self_us / b.step_divisor) if p.b else 0.0,
        )
        for p in pairs
    ]
    out.sort(key=lambda f: (-abs(f.delta), f.pair.name))
    return out


def _op_table(figures: Sequence[PairFigures]) -> dict[str, Any]:
    rows = []
    for f in figures:
        ra, rb = f.pair.a, f.pair.b
        any_row = rb if rb is not None else ra
        assert any_row is not None
        rows.append(
            [
                f.pair.name,
                f.pair.status,
                f.pair.matched_by,
                ra.name if ra else None,
                rb.name if rb else None,
                any_row.category,
                any_row.context,
                ra.occurrences if ra else 0,
                rb.occurrences if rb else 0,
                ra.total_us if ra else 0.0,
                rb.total_us if rb else 0.0,
                ra.self_us if ra else 0.0,
                rb.self_us if rb else 0.0,
                (ra.total_us / ra.occurrences) if ra and ra.occurrences else None,
                (rb.total_us / rb.occurrences) if rb and rb.occurrences else None,
                f.per_step_a,
                f.per_step_b,
                f.delta,
                (rb.total_us if rb else 0.0) - (ra.total_us if ra else 0.0),
                _ratio(f.per_step_b, f.per_step_a),
            ]
        )
    return datatable(_OP_COLUMNS, rows)


def _top_table(figures: Sequence[PairFigures], change_us: float | None) -> dict[str, Any]:
    rows = []
    for i, f in enumerate(figures, 1):
        share = f.delta / change_us * 100.0 if change_us else None
        rows.append(
            [
                i,
                f.pair.name,
                f.pair.status,
                f.pair.a.name if f.pair.a else None,
                f.per_step_a,
                f.per_step_b,
                f.delta,
                _ratio(f.per_step_b, f.per_step_a),
                share,
            ]
        )
    return datatable(_TOP_COLUMNS, rows)


def _fmt_ms(v: float) -> str:
    return f"{v:,.3f} ms"


def diff_results(
    results_a: Mapping[str, Any],
    results_b: Mapping[str, Any],
    labels: tuple[str, str] = ("A", "B"),
    metric: str = "mean",
    top: int = DEFAULT_TOP,
) -> dict[str, Any]:
    """Compare two runs given each one's tool results ({tool name: result}, see ``INPUT_TOOLS``).

    ``metric`` is the step-time figure the verdict compares: "mean" (the
    default: op times per step add up to it), "p50", "p90" or "p99". ``top``
    bounds the regression and improvement tables. Times are in ms for steps
    and µs for ops, as in the input tools.
    """
    if metric not in METRICS:
        raise ParamError(f"parameter 'metric' must be one of {', '.join(METRICS)}, got {metric!r}")
    if top < 1:
        raise ParamError(f"parameter 'top' must be at least 1, got {top}")
    a, b = Side(labels[0], results_a), Side(labels[1], results_b)
    dist_a, dist_b = distribution(a.steps_ms), distribution(b.steps_ms)
    figures = {level: _figures(align(a.levels[level], b.levels[level]), a, b) for level in LEVELS}
    primary = next((lv for lv in LEVELS if a.levels[lv] or b.levels[lv]), LEVELS[0])

    # The figure the verdict compares: a step-time statistic, or total op time when a side has no steps.
    if dist_a["count"] and dist_b["count"]:
        basis = f"{metric} step time"
        value_a, value_b = float(dist_a[metric] or 0.0), float(dist_b[metric] or 0.0)
    else:
        basis = "op time (no step markers)"
        value_a = sum(r.self_us for r in a.levels[primary]) / 1000.0
        value_b = sum(r.self_us for r in b.levels[primary]) / 1000.0
    change_ms = value_b - value_a
    change_pct = _pct_change(value_a, value_b)
    change_us = change_ms * 1000.0

    ranked = figures[primary]
    regressions = sorted((f for f in ranked if f.delta > 0), key=lambda f: -f.delta)
    improvements = sorted((f for f in ranked if f.delta < 0), key=lambda f: f.delta)
    verdict, explained = _verdict(labels, basis, value_a, value_b, change_pct, regressions, improvements, change_us)

    step_rows = []
    for key in ("count", "mean", "std", "min", "p50", "p90", "p99", "max"):
        va, vb = dist_a[key], dist_b[key]
        delta = None if va is None or vb is None else vb - va
        step_rows.append([key, va, vb, delta, _pct_change(va, vb) if key != "count" else None])
    bd_a, bd_b = breakdown_ms(results_a.get("overview_page")), breakdown_ms(results_b.get("overview_page"))
    pct_a = (results_a.get("overview_page") or {}).get("breakdown_pct") or {}
    pct_b = (results_b.get("overview_page") or {}).get("breakdown_pct") or {}
    bd_rows = []
    for cat in list(dict.fromkeys([*bd_a, *bd_b])):
        ma, mb = bd_a.get(cat, 0.0), bd_b.get(cat, 0.0)
        bd_rows.append([cat, ma, mb, mb - ma, pct_a.get(cat), pct_b.get(cat)])

    return {
        "version": VERSION,
        "runs": {"a": labels[0], "b": labels[1]},
        "verdict": verdict,
        "summary": {
            "basis": basis,
            "metric": metric,
            "value_a_ms": value_a,
            "value_b_ms": value_b,
            "change_ms": change_ms,
            "change_pct": change_pct,
            "slower": change_ms > 0,
            "primary_level": primary,
            "explained_by": explained,
            "steps_a": dist_a["count"],
            "steps_b": dist_b["count"],
            "new_ops": sum(1 for f in ranked if f.pair.status == "new"),
            "vanished_ops": sum(1 for f in ranked if f.pair.status == "vanished"),
            "matched_ops": sum(1 for f in ranked if f.pair.status == "both"),
        },
        "steps": {"a": dist_a, "b": dist_b},
        "step_distribution": datatable(
            [
                ("statistic", "Statistic", "string"),
                ("a_ms", f"{labels[0]} (ms)", "number"),
                ("b_ms", f"{labels[1]} (ms)", "number"),
                ("delta_ms", "Delta (ms)", "number"),
                ("change_pct", "Change (%)", "number"),
            ],
            step_rows,
        ),
        "breakdown": datatable(
            [
                ("category", "Category", "string"),
                ("a_ms", "A (ms per step)", "number"),
                ("b_ms", "B (ms per step)", "number"),
                ("delta_ms", "Delta (ms per step)", "number"),
                ("a_pct", "A (% of step)", "number"),
                ("b_pct", "B (% of step)", "number"),
            ],
            bd_rows,
        ),
        "top_regressions": _top_table(regressions[:top], change_us),
        "top_improvements": _top_table(improvements[:top], change_us),
        **{level: _op_table(figures[level]) for level in LEVELS},
    }


def _verdict(
    labels: tuple[str, str],
    basis: str,
    value_a: float,
    value_b: float,
    change_pct: float | None,
    regressions: Sequence[PairFigures],
    improvements: Sequence[PairFigures],
    change_us: float,
) -> tuple[str, list[dict[str, Any]]]:
    """The verdict line and the ops it names ({name, delta_per_step_us, share_pct})."""
    la, lb = labels
    per = "per step" if "step time" in basis else "in op time"
    metric = basis.split(" ")[0] if "step time" in basis else "total"
    figures = f"({metric} {_fmt_ms(value_a)} -> {_fmt_ms(value_b)})"
    if change_pct is None:
        return f"{la} and {lb} cannot be compared: {la} has no {basis}", []
    if abs(change_pct) < SAME_PCT:
        return f"{lb} takes the same time as {la} {per} {figures}, within {SAME_PCT:g}%", []
    slower = change_pct > 0
    word = "slower" if slower else "faster"
    head = f"{lb} is {abs(change_pct):.1f}% {word} than {la} {per} {figures}"
    movers = regressions if slower else improvements
    named: list[PairFigures] = []
    total = 0.0
    for f in movers[:MAX_NAMED]:
        named.append(f)
        total += f.delta
        if total / change_us >= EXPLAIN_SHARE:
            break
    if not named:
        return head, []
    share = total / change_us * 100.0
    ops = ", ".join(f"{f.pair.name} ({'+' if f.delta > 0 else ''}{f.delta / 1000.0:,.3f} ms)" for f in named)
    noun = "op" if len(named) == 1 else "ops"
    explained = [
        {
            "name": f.pair.name,
            "status": f.pair.status,
            "delta_per_step_us": f.delta,
            "share_pct": f.delta / change_us * 100,
        }
        for f in named
    ]
    return f"{head}; {share:.0f}% of it is in {len(named)} {noun}: {ops}", explained


__all__ = [
    "INPUT_TOOLS",
    "LEVELS",
    "METRICS",
    "OpRow",
    "Pair",
    "align",
    "diff_results",
    "distribution",
    "normalize_hlo_text",
    "split_suffix",
]
