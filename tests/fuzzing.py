"""Fuzzing every tool: mutated profiles through every tool, in a child process that may crash.

A *case* is the bytes of one mutated ``.xplane.pb``. :class:`ToolRunner` keeps one child
Python process (this file run as a script with ``--child``) that reads case paths on its
standard input and, for each, runs every registered tool the way the serving stack does: the
tool's ``map`` on the decoded file, the partial through the worker's wire format
(``encode_partial`` / ``decode_partial``), ``reduce`` (or ``reduce_json``) over that host and a
second copy of it, the answer as JSON (parsed back) and every DataTable as CSV. The child
answers one JSON line per tool run. The parent counts what it sees:

* **ok** or **project error**: the tool answered, or raised an :class:`~xprof_core.errors.XprofError`
  (bad input is allowed to fail, in the project's own terms);
* **exception**: any other exception (``IndexError``, ``MemoryError``, ``RecursionError``...);
* **bad JSON**: an answer that does not parse back as JSON;
* **crash**: the child died (a signal such as SIGSEGV, or a sanitizer's abort);
* **hang**: one tool run took longer than the per-run limit (10 s); the child is killed.

After a crash or a hang the child is restarted. Every finding keeps its input (and the
child's stderr tail), so it can be replayed with ``scripts/fuzz_tools.py --replay``.

Mutations come in two layers, both described by plain tuples so that hypothesis (in the
tests) and ``random.Random`` (in the long script) draw the same kinds of cases:

* *message* mutations parse a seed with the generated ``xplane_pb2`` module, then set one
  scalar field to an extreme value of its type (ids, offsets, durations, stat values), give a
  string field a name harvested from the seeds (a stat called ``step_num`` that holds a string,
  a plane renamed ``/device:GPU:0``), change which value a stat carries, duplicate or drop a
  repeated element, or move a metadata entry to another key. The file stays valid protobuf, so
  it reaches the tools, which is where the decoder's fuzzing never went;
* *byte* mutations flip bits and insert, delete or overwrite short runs of the serialised bytes.

Seeds: the JAX profiles in ``tests/data/jax/``, the small real profiles of
``../shared/data/real`` when present (each cut down to at most a few dozen events per line, so
that a case runs in milliseconds), and the crafted files in ``tests/data/hostile/``.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import json
import math
import os
import random
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

ROOT = Path(__file__).resolve().parent.parent
JAX_DATA = ROOT / "tests" / "data" / "jax"
HOSTILE = ROOT / "tests" / "data" / "hostile"
REAL = ROOT.parent / "shared" / "data" / "real"

#: Longest a single tool run may take before it counts as a hang (a sanitizer build runs slower
#: and raises it with ``XPROF_FUZZ_HANG_S``).
HANG_S = float(os.environ.get("XPROF_FUZZ_HANG_S", "10"))
#: Longest the child may take to import everything and say it is ready.
STARTUP_S = 120.0
#: Real files larger than this are not used as seeds (cases must stay fast).
MAX_SEED_BYTES = 1 << 20
#: Events kept per line when a seed is cut down.
EVENTS_PER_LINE = 48
#: With ``XPROF_FUZZ_SELFTEST`` set to segv, hang or raise in its environment, the child does that
#: when handed exactly these bytes, so a test can prove the harness sees each kind of failure.
SELFTEST_CASE = b"XPROF_FUZZ_SELFTEST"
#: Address-space cap of the child outside sanitizers: an unchecked allocation fails as MemoryError.
CHILD_ADDRESS_SPACE = 4 << 30

# --- mutations --------------------------------------------------------------------------------

#: One mutation: (kind, site, choice, blob). ``site`` picks what to change (modulo the number of
#: candidates), ``choice`` picks the new value, ``blob`` supplies raw bytes where one is needed.
Mutation = tuple[str, int, int, bytes]

MESSAGE_KINDS = ("scalar", "scalar", "scalar", "name", "stat_kind", "dup", "drop", "rekey")
BYTE_KINDS = ("flip", "insert", "delete", "overwrite")
KINDS = MESSAGE_KINDS + BYTE_KINDS

_INT64 = (
    0, 1, -1, 2, 7, 255, -1048576, 2**31 - 1, 2**31, -(2**31), 2**32, 2**40,
    2**53 + 1, 2**62, -(2**62), 2**63 - 1, -(2**63),
)  # fmt: skip
_UINT64 = (0, 1, 2, 7, 2**31, 2**32, 2**40, 2**62, 2**63, 2**63 + 1, 2**64 - 1)
_INT32 = (0, 1, -1, 2**31 - 1, -(2**31))
_DOUBLE = (0.0, -0.0, 1.5, -1.0, 1e300, -1e300, 5e-324, math.inf, -math.inf, math.nan)
_NAMES = (
    "", "/host:CPU", "/device:GPU:0", "/device:TPU:0", "/device:CUSTOM:0", "Steps", "XLA Ops",
    "XLA Modules", "Framework Ops", "Stream #1", "step_num", "group_id", "correlation_id",
    "hlo_op", "hlo_module", "tf_op", "kernel_details", "device_duration_ps", "program_id",
    "context_id", "flops", "bytes_accessed", "memcpy_details", "long_name", "hlo_proto",
    "tf_function_call", "iter_num", "_r", "_ct", "_pt", "$", "x" * 4096, "\u00e9\u4e2d\U0001f600",
)  # fmt: skip

_LIMITS = {  # field type -> (low, high) of values protobuf can serialise
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "int32": (-(2**31), 2**31 - 1),
}


def _xplane_pb2() -> Any:
    from xprof_core.protos import xplane_pb2

    return xplane_pb2


_TYPE_NAMES = {
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_MESSAGE: "message",
}


def _type_name(fd: Any) -> str:
    return _TYPE_NAMES.get(fd.type, "other")


@dataclass
class _Sites:
    """Everything a message mutation can touch in one XSpace."""

    scalars: list[tuple[Any, Any, int | None]] = field(default_factory=list)  # (message, field, index)
    strings: list[tuple[Any, Any, int | None]] = field(default_factory=list)
    repeated: list[tuple[Any, Any]] = field(default_factory=list)  # (message, repeated message field)
    stats: list[Any] = field(default_factory=list)
    maps: list[Any] = field(default_factory=list)  # MessageMap of event_metadata / stat_metadata


def _collect(message: Any, sites: _Sites) -> None:
    stack = [message]
    while stack:
        msg = stack.pop()
        if msg.DESCRIPTOR.name == "XStat":
            sites.stats.append(msg)
        for fd, value in msg.ListFields():
            kind = _type_name(fd)
            if kind == "message":
                if fd.message_type.GetOptions().map_entry:
                    sites.maps.append(value)
                    stack.extend(value.values())
                elif fd.is_repeated:
                    sites.repeated.append((msg, fd))
                    stack.extend(value)
                else:
                    stack.append(value)
            elif kind in ("string", "bytes"):
                if fd.is_repeated:
                    sites.strings.extend((msg, fd, i) for i in range(len(value)))
                else:
                    sites.strings.append((msg, fd, None))
            elif kind != "other":
                if fd.is_repeated:
                    sites.scalars.extend((msg, fd, i) for i in range(len(value)))
                else:
                    sites.scalars.append((msg, fd, None))


def _set(msg: Any, fd: Any, index: int | None, value: Any) -> None:
    if index is None:
        setattr(msg, fd.name, value)
    else:
        getattr(msg, fd.name)[index] = value


def _scalar_value(kind: str, choice: int, blob: bytes) -> Any:
    if kind == "double":
        if choice % 4 == 3:  # any 8 bytes as a double
            raw = (blob * 8)[:8]
            return float(struct.unpack("<d", raw)[0])
        return _DOUBLE[choice % len(_DOUBLE)]
    low, high = _LIMITS[kind]
    table = {"int64": _INT64, "uint64": _UINT64, "int32": _INT32}[kind]
    if choice % 3 == 2:  # any value in range, from the blob
        raw = int.from_bytes((blob * 8)[:8], "little")
        return low + raw % (high - low + 1)
    value = table[choice % len(table)]
    return min(max(value, low), high)


def _mutate_message(space: Any, mutations: Sequence[Mutation], names: Sequence[str]) -> None:
    sites: _Sites | None = None
    for kind, site, choice, blob in mutations:
        if sites is None:  # listed again only after a change of structure
            sites = _Sites()
            _collect(space, sites)
        if kind == "scalar" and sites.scalars:
            msg, fd, index = sites.scalars[site % len(sites.scalars)]
            _set(msg, fd, index, _scalar_value(_type_name(fd), choice, blob))
        elif kind == "name" and sites.strings:
            msg, fd, index = sites.strings[site % len(sites.strings)]
            word = names[choice % len(names)] if names else ""
            _set(msg, fd, index, word.encode() if _type_name(fd) == "bytes" else word)
        elif kind == "stat_kind" and sites.stats:
            stat = sites.stats[site % len(sites.stats)]
            member = ("double_value", "uint64_value", "int64_value", "str_value", "bytes_value", "ref_value")[
                choice % 6
            ]
            if member == "str_value":
                stat.str_value = names[(choice // 6) % len(names)] if names else ""
            elif member == "bytes_value":
                stat.bytes_value = blob
            else:
                fd = stat.DESCRIPTOR.fields_by_name[member]
                setattr(stat, member, _scalar_value(_type_name(fd), choice // 6, blob))
        elif kind in ("dup", "drop") and sites.repeated:
            msg, fd = sites.repeated[site % len(sites.repeated)]
            items = getattr(msg, fd.name)
            if not items:
                continue
            at = choice % len(items)
            if kind == "drop":
                del items[at]
            else:
                items.add().CopyFrom(items[at])
            sites = None
        elif kind == "rekey" and sites.maps:
            entries = sites.maps[site % len(sites.maps)]
            keys = sorted(entries)
            if not keys:
                continue
            key = keys[choice % len(keys)]
            value = copy.deepcopy(entries[key])
            del entries[key]
            if choice % 5:  # else: the entry is dropped altogether
                entries[_scalar_value("int64", choice // 5, blob)].CopyFrom(value)
            sites = None


def mutate_bytes(data: bytes, mutations: Sequence[Mutation]) -> bytes:
    """Apply the byte mutations of ``mutations`` (message kinds are skipped); positions wrap."""
    buf = bytearray(data)
    for kind, site, _choice, blob in mutations:
        if kind not in BYTE_KINDS or not buf:
            continue
        pos = site % (len(buf) + 1)
        if kind == "flip":
            pos = min(pos, len(buf) - 1)
            buf[pos] ^= 1 << (blob[0] % 8 if blob else 0)
        elif kind == "insert":
            buf[pos:pos] = blob
        elif kind == "delete":
            del buf[pos : pos + max(1, len(blob))]
        else:
            buf[pos : pos + len(blob)] = blob
    return bytes(buf)


def build_case(seed: Seed, mutations: Sequence[Mutation]) -> bytes:
    """The bytes of ``seed`` after ``mutations``: message mutations first, then byte mutations."""
    data = seed.data
    if any(kind in MESSAGE_KINDS for kind, *_ in mutations) and seed.parses:
        space = _xplane_pb2().XSpace.FromString(seed.data)
        _mutate_message(space, mutations, seed_names())
        data = space.SerializeToString()
    return mutate_bytes(data, mutations)


def random_mutations(rng: random.Random, max_count: int = 6) -> list[Mutation]:
    """Draw mutations as the tests' hypothesis strategy does, from a ``random.Random``."""
    out = []
    for _ in range(rng.randint(1, max_count)):
        kind = rng.choice(MESSAGE_KINDS if rng.random() < 0.8 else BYTE_KINDS)
        blob = rng.randbytes(rng.randint(1, 12))
        out.append((kind, rng.getrandbits(32), rng.getrandbits(16), blob))
    return out


# --- seeds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """One starting file: its name and bytes (cut down when it came from a large profile)."""

    name: str
    data: bytes = field(repr=False)  # hypothesis prints failing examples: the name is enough
    parses: bool = True  # whether protobuf parses it (hostile files may not): message mutations need it


def _cut_down(data: bytes) -> bytes:
    """A profile with at most ``EVENTS_PER_LINE`` events per line and the event metadata they use."""
    space = _xplane_pb2().XSpace.FromString(data)
    for plane in space.planes:
        used: set[int] = set()
        for line in plane.lines:
            del line.events[EVENTS_PER_LINE:]
            used.update(event.metadata_id for event in line.events)
        pending = list(used)
        while pending:  # and the metadata those refer to as children
            key = pending.pop()
            if key in plane.event_metadata:
                children = set(plane.event_metadata[key].child_id) - used
                used |= children
                pending += children
        for key in [k for k in plane.event_metadata if k not in used]:
            del plane.event_metadata[key]
    return space.SerializeToString(deterministic=True)


def seed_files() -> list[Path]:
    """The seed files: JAX profiles, small real ones (when present) and the hostile corpus."""
    files = sorted(JAX_DATA.glob("*.xplane.pb"))
    if REAL.is_dir():
        files += sorted(
            p for p in REAL.rglob("*.xplane.pb") if "corrupted" not in p.parts and p.stat().st_size <= MAX_SEED_BYTES
        )
    return files + sorted(HOSTILE.glob("*.xplane.pb"))


@cache
def seeds() -> tuple[Seed, ...]:
    """Every seed: hostile files as they are, the others cut down (and the smallest one whole)."""
    out = []
    for path in seed_files():
        if HOSTILE in path.parents and path.name in OPEN_BUGS.values():
            continue  # mutating a known-bad file mostly finds the same bug again (and hangs cost 10 s)
        data = path.read_bytes()
        name = str(path.relative_to(ROOT.parent) if REAL in path.parents else path.relative_to(ROOT))
        try:
            _xplane_pb2().XSpace.FromString(data)
            parses = True
        except Exception:  # noqa: BLE001 - a hostile seed protobuf refuses: byte mutations only
            parses = False
        if parses and HOSTILE not in path.parents:
            out.append(Seed(name, _cut_down(data), True))
        else:
            out.append(Seed(name, data, parses))
    smallest = min(sorted(JAX_DATA.glob("*.xplane.pb")), key=lambda p: p.stat().st_size)
    out.append(Seed(f"{smallest.relative_to(ROOT)} (whole)", smallest.read_bytes(), True))
    return tuple(out)


@cache
def seed_names() -> tuple[str, ...]:
    """A dictionary of names: the well-known ones plus every short name found in the seeds."""
    found: set[str] = set()
    for seed in seeds():
        if not seed.parses:
            continue
        space = _xplane_pb2().XSpace.FromString(seed.data)
        for plane in space.planes:
            found.add(plane.name)
            found.update(line.name for line in plane.lines)
            found.update(md.name for md in plane.event_metadata.values())
            found.update(md.name for md in plane.stat_metadata.values())
    return tuple(dict.fromkeys([*_NAMES, *sorted(n for n in found if len(n) <= 200)]))


# --- running cases ----------------------------------------------------------------------------


@dataclass
class Finding:
    """A case that broke something: what, where, and the input that did it."""

    kind: str  # "crash" | "hang" | "exception" | "bad_json"
    tool: str
    detail: str
    data: bytes
    gz: bool = False

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.data).hexdigest()[:12]

    def save(self, folder: Path) -> Path:
        """Write the input and a JSON note next to it; return the input's path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.kind}-{self.digest}.xplane.pb{'.gz' if self.gz else ''}"
        path.write_bytes(gzip.compress(self.data, mtime=0) if self.gz else self.data)
        note = {"kind": self.kind, "tool": self.tool, "detail": self.detail, "bytes": len(self.data)}
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(note, indent=1) + "\n")
        return path

    def __str__(self) -> str:
        shown = self.data.hex() if len(self.data) <= 512 else f"{len(self.data)} bytes, sha1 {self.digest}"
        return f"{self.kind} in {self.tool}: {self.detail}\ninput: {shown}"


@dataclass
class Stats:
    """Counts over every case run."""

    cases: int = 0
    tool_runs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "ok", "DecodeError", "exception", ...
    findings: list[Finding] = field(default_factory=list)
    restarts: int = 0
    seconds: float = 0.0

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    def summary(self) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()) if k != "ok")
        return (
            f"{self.cases} cases, {self.tool_runs} tool runs in {self.seconds:.0f} s: "
            f"ok {self.outcomes['ok']}, project errors [{errors}]; "
            f"crashes {self.count('crash')}, hangs {self.count('hang')}, "
            f"other exceptions {self.count('exception')}, bad JSON {self.count('bad_json')}"
        )


def tool_runs() -> list[tuple[str, dict[str, str]]]:
    """(tool, params) pairs the child runs on each case: every tool, plus a windowed trace."""
    from xprof_core.tools import tool_names

    runs: list[tuple[str, dict[str, str]]] = [(name, {}) for name in tool_names()]
    if "trace_viewer" in dict(runs):
        runs.append(("trace_viewer", {"resolution": "64", "max_events": "40"}))
    return runs


class ToolRunner:
    """One child process that runs every tool on each case; restarted after a crash or a hang.

    ``env`` is the child's environment (the tests pass one whose PYTHONPATH finds the same
    xprof_core; the sanitizer script adds ``LD_PRELOAD``). Use as a context manager.
    """

    def __init__(self, env: dict[str, str] | None = None, hang_s: float = HANG_S) -> None:
        self.env = env
        self.hang_s = hang_s
        self.stats = Stats()
        self._tmp = tempfile.TemporaryDirectory(prefix="xprof-fuzz-")
        self._dir = Path(self._tmp.name)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._buffer = b""

    def __enter__(self) -> ToolRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        self._tmp.cleanup()

    # -- the child ----------------------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        self._stderr = open(self._dir / "child.stderr", "w+b")  # noqa: SIM115 - kept open for the child's life
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
        )
        self._buffer = b""
        # Imports take a while (longer under a sanitizer): the hang clock starts once it is ready.
        if self._readline(self._proc, STARTUP_S) != b'{"ready": true}':
            tail = self._stderr_tail()
            self._stop()
            raise RuntimeError(f"the fuzzing child did not start:\n{tail}")
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode("utf-8", "replace")

    def _readline(self, proc: subprocess.Popen[bytes], timeout_s: float) -> bytes | None:
        """The child's next line; None when it closed its output (it died) or said nothing in time."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:  # end of file: the child is exiting; let it finish so poll() tells why
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=30)
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    # -- one case -----------------------------------------------------------------------------

    def run(self, data: bytes, gz: bool = False) -> list[Finding]:
        """Run every tool on ``data`` (written as ``.xplane.pb.gz`` when ``gz``); return its findings."""
        t0 = time.monotonic()
        path = self._dir / ("case.xplane.pb.gz" if gz else "case.xplane.pb")
        path.write_bytes(gzip.compress(data, compresslevel=1, mtime=0) if gz else data)
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        assert proc.stdin is not None
        findings: list[Finding] = []
        try:
            proc.stdin.write(str(path).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        runs = tool_runs()
        for done in range(len(runs) + 1):
            line = self._readline(proc, self.hang_s)
            if line is None:
                tool = _run_label(*runs[done]) if done < len(runs) else "(after the last tool)"
                if proc.poll() is None:
                    findings.append(Finding("hang", tool, f"no answer within {self.hang_s:.0f} s", data, gz))
                else:
                    code = proc.returncode
                    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                    findings.append(Finding("crash", tool, f"{how}\n{self._stderr_tail()}", data, gz))
                self._stop()
                self.stats.restarts += 1
                break
            answer = json.loads(line)
            if answer.get("done"):
                break
            self.stats.tool_runs += 1
            outcome = answer["outcome"]
            self.stats.outcomes[outcome] += 1
            if outcome in ("exception", "bad_json"):
                findings.append(Finding(outcome, answer["run"], answer["detail"], data, gz))
        self.stats.cases += 1
        self.stats.findings += findings
        self.stats.seconds += time.monotonic() - t0
        return findings


def _run_label(tool: str, params: dict[str, str]) -> str:
    return tool + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


# --- the child ----------------------------------------------------------------------------------


def _child_main() -> None:  # pragma: no cover - runs in the child process
    """Read case paths from stdin; answer one JSON line per tool run, then ``{"done": true}``."""
    import resource
    import traceback

    if "asan" not in os.environ.get("LD_PRELOAD", ""):  # sanitizers reserve terabytes of address space
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a tool prints goes to stderr, not into the answers

    import orjson

    from xprof_core.errors import XprofError
    from xprof_core.execute import map_host
    from xprof_core.serve.partials import decode_partial, encode_partial
    from xprof_core.tools import get_tool
    from xprof_core.tools.datatable import to_csv

    selftest = os.environ.get("XPROF_FUZZ_SELFTEST")

    def run_once(tool_name: str, params: dict[str, str], path: str) -> None:
        if selftest and Path(path).read_bytes() == SELFTEST_CASE:
            if selftest == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            elif selftest == "hang":
                time.sleep(3600)
            raise RuntimeError("self-test exception")
        tool = get_tool(tool_name)
        wire = encode_partial(map_host(tool_name, path, params))
        partials = [decode_partial(wire), decode_partial(wire)]
        for i, partial in enumerate(partials):
            partial["host"] = f"host{i}"
        render = getattr(tool, "reduce_json", None)
        if render is not None:
            body = render(partials, params)
        else:
            result = tool.reduce(partials, params)
            body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
            for table in result.values():
                if isinstance(table, dict) and "cols" in table and "rows" in table:
                    to_csv(table)
        try:
            json.loads(body)
        except ValueError as exc:
            raise _BadJson(f"{exc}: {bytes(body[:200])!r}") from None

    tool_runs()  # import every tool before saying ready
    out.write('{"ready": true}\n')
    for line in sys.stdin:
        path = line.strip()
        for tool_name, params in tool_runs():
            label = _run_label(tool_name, params)
            try:
                run_once(tool_name, params, path)
                answer = {"outcome": "ok"}
            except XprofError as exc:
                answer = {"outcome": type(exc).__name__}
            except _BadJson as exc:
                answer = {"outcome": "bad_json", "detail": str(exc)}
            except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer is looking for
                tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
                answer = {"outcome": "exception", "detail": "".join(tb[-6:])[-3000:]}
            answer["run"] = label
            out.write(json.dumps(answer) + "\n")
        out.write('{"done": true}\n')


class _BadJson(Exception):
    pass


# --- open bugs ---------------------------------------------------------------------------------

#: Bugs in the tools that the fuzzer finds and that are not fixed yet, each with a small
#: reproducer in tests/data/hostile/: (kind, where) -> file. A finding that matches one is
#: counted but does not fail the fuzz test; ``test_open_bugs_still_reproduce`` (a strict xfail)
#: fails as soon as one is fixed, so that its entry is removed here and the file becomes a
#: plain regression input.
OPEN_BUGS: dict[tuple[str, str], str] = {}


def open_bug(finding: Finding) -> str | None:
    """The reproducer file of the open bug this finding is an instance of, or None when it is new."""
    kind, tool, where = signature(finding)
    base_tool = tool.split("?", 1)[0]
    return OPEN_BUGS.get((kind, where if kind == "exception" else base_tool))


def new_findings(findings: Sequence[Finding]) -> list[Finding]:
    """The findings that are not instances of an open bug."""
    return [f for f in findings if open_bug(f) is None]


# --- minimising -------------------------------------------------------------------------------


def signature(finding: Finding) -> tuple[str, str, str]:
    """What makes two findings the same bug: kind, tool run, and for exceptions the type and place.

    The place is the innermost frame inside xprof_core (file and function, not the line).
    """
    if finding.kind != "exception":
        return (finding.kind, finding.tool, "")
    lines = finding.detail.strip().splitlines()
    error = lines[-1].split(":", 1)[0] if lines else ""
    frames = [ln.strip() for ln in lines if ln.strip().startswith("File ") and "xprof_core" in ln]
    place = ""
    if frames:
        file_part, _, func = frames[-1].rpartition(" in ")
        module = file_part.split("xprof_core", 1)[1].split('"', 1)[0]
        place = f"{module}:{func}"
    return (finding.kind, finding.tool, f"{error} at {place}")


def minimize(runner: ToolRunner, finding: Finding, budget_s: float = 120.0) -> bytes:
    """A smaller input with the same :func:`signature`: repeated elements and map entries dropped greedily."""
    target = signature(finding)
    deadline = time.monotonic() + budget_s

    def same(data: bytes) -> bool:
        return any(signature(f) == target for f in runner.run(data, finding.gz))

    parse = _xplane_pb2().XSpace.FromString
    try:
        best = parse(finding.data).SerializeToString()
    except Exception:  # noqa: BLE001 - not protobuf: cut byte runs instead
        return _minimize_bytes(finding.data, same, deadline)
    if not same(best):  # re-serialising changed the bytes that mattered
        return _minimize_bytes(finding.data, same, deadline)
    progress = True
    while progress and time.monotonic() < deadline:
        progress = False
        for path in _container_paths(parse(best)):
            chunk = len(_resolve(parse(best), path) or ())
            while chunk >= 1 and not progress and time.monotonic() < deadline:
                start = 0
                while time.monotonic() < deadline:
                    trial = parse(best)
                    items = _resolve(trial, path)
                    if items is None or start >= len(items):
                        break
                    if hasattr(items, "keys"):
                        for key in sorted(items)[start : start + chunk]:
                            del items[key]
                    else:
                        del items[start : start + chunk]
                    data = trial.SerializeToString()
                    if same(data):
                        best, progress = data, True
                    else:
                        start += chunk
                chunk //= 2
            if progress:
                break  # paths may have shifted: list them again
    return best


Path_ = tuple[tuple[str, Any], ...]


def _container_paths(space: Any) -> list[Path_]:
    """Every repeated field and map of ``space``, outermost first: (field, index or key) steps.

    The last step's key is None: the path names the container itself.
    """
    out: list[Path_] = []
    queue: list[tuple[Any, Path_]] = [(space, ())]
    while queue:
        msg, prefix = queue.pop(0)
        for fd, value in msg.ListFields():
            if not fd.is_repeated:
                if _type_name(fd) == "message":
                    queue.append((value, (*prefix, (fd.name, None))))
                continue
            out.append((*prefix, (fd.name, None)))
            if _type_name(fd) == "message":
                pairs = value.items() if hasattr(value, "items") else enumerate(value)
                queue.extend((child, (*prefix, (fd.name, key))) for key, child in pairs)
    return out


def _resolve(space: Any, path: Path_) -> Any:
    """The container at ``path`` in ``space``, or None when the path no longer exists there."""
    node = space
    for name, key in path:
        node = getattr(node, name)
        if key is None:
            continue
        if hasattr(node, "keys"):
            if key not in node:  # indexing a missing map key would create it
                return None
        elif not 0 <= key < len(node):
            return None
        node = node[key]
    return node


def _minimize_bytes(data: bytes, same: Any, deadline: float) -> bytes:
    chunk = len(data) // 2
    while chunk >= 1 and time.monotonic() < deadline:
        start = 0
        while start < len(data) and time.monotonic() < deadline:
            trial = data[:start] + data[start + chunk :]
            if trial and same(trial):
                data = trial
            else:
                start += chunk
        chunk //= 2
    return data


# --- driving -----------------------------------------------------------------------------------


def fuzz(
    runner: ToolRunner, seconds: float, rng: random.Random, max_cases: int | None = None
) -> Iterator[tuple[Seed, list[Finding]]]:
    """Run random cases until ``seconds`` pass (or ``max_cases``); yield each case's findings."""
    pool = seeds()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline and (max_cases is None or n < max_cases):
        seed = rng.choice(pool)
        data = build_case(seed, random_mutations(rng))
        yield seed, runner.run(data, gz=rng.random() < 0.05)
        n += 1


def run_corpus(runner: ToolRunner, paths: Sequence[Path]) -> list[Finding]:
    """Run every file of ``paths`` as it is (``.gz`` ones gunzipped by the stack)."""
    findings = []
    for path in paths:
        raw = path.read_bytes()
        gz = path.name.endswith(".gz")
        findings += runner.run(gzip.decompress(raw) if gz else raw, gz=gz)
    return findings


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    _child_main()
