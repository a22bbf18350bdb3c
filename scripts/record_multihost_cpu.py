"""Record a small, real multi-host JAX profile on one machine.

N JAX processes on the CPU platform join one job with ``jax.distributed``
(a coordinator on 127.0.0.1, the global device list of N CPU devices, gloo
collectives), each trains the same small MLP and profiles itself with
``jax.profiler.trace``: every process writes its own XSpace, as every host of
a real multi-host job does. The hosts differ by design, so that multi-host
rules show in the numbers:

* per-host input work: process ``i`` waits ``input_ms[i]`` ms for each batch
  inside a host event named ``next_batch`` (an input event), so step times
  and input shares differ from host to host;
* per-host step ranges: process 1 also marks one step after the others'
  last (``--steps``), and process 2 (with three or more hosts) does not mark
  the first step, so only some steps are on every host.

Steps are marked with ``jax.profiler.StepTraceAnnotation("train",
step_num=g)``. Each step's compute is local (no collective inside a step),
so a slow host does not slow the others; the processes meet at barriers
before and after tracing, which makes their profiles cover the same stretch
of time.

Usage::

    python scripts/record_multihost_cpu.py --out-dir DIR [--hosts 3] [--steps 8]
        [--input-ms 0,2,8,16] [--hidden 512] [--batch 128]

It writes ``DIR/plugins/profile/<session>/host<i>.xplane.pb.gz`` (one file per
process, gzipped) and ``DIR/recording.json``: JAX version, options, and each
process's own per-step wall time (``time.perf_counter`` around the step, its
``block_until_ready`` included) for the steps it marked.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True, help="logdir for plugins/profile/<session>/ and recording.json")
    p.add_argument("--hosts", type=int, default=3, help="JAX processes (2 to 4)")
    p.add_argument("--steps", type=int, default=8, help="steps every process runs under the trace")
    p.add_argument("--warmup", type=int, default=3, help="steps run before tracing starts")
    p.add_argument("--input-ms", default="0,2,8,16", help="per-process input wait per step (ms), comma-separated")
    p.add_argument("--hidden", type=int, default=512, help="hidden width of the MLP")
    p.add_argument("--batch", type=int, default=128, help="batch size")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the processes")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--work-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 2 <= args.hosts <= 4:
        p.error("--hosts must be 2, 3 or 4")
    return args


def _input_ms(args: argparse.Namespace) -> list[float]:
    values = [float(v) for v in args.input_ms.split(",") if v]
    if len(values) < args.hosts:
        raise SystemExit(f"--input-ms needs {args.hosts} values, got {values}")
    return values[: args.hosts]


def marked_steps(host: int, hosts: int, steps: int) -> list[int]:
    """The step numbers process ``host`` marks: 0..steps-1, one more on host 1, one fewer on host 2."""
    first = 1 if host == 2 else 0
    last = steps if host == 1 else steps - 1
    return list(range(first, last + 1))


def _child(args: argparse.Namespace) -> int:
    """One process of the job: join, train, profile itself, write its XSpace and timings."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils

    host, hosts = int(args.child), int(args.hosts)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{args.port}", num_processes=hosts, process_id=host)
    if jax.process_count() != hosts or jax.process_index() != host:
        print(f"host {host}: joined as {jax.process_index()} of {jax.process_count()}", file=sys.stderr)
        return 1
    wait_s = _input_ms(args)[host] / 1000.0

    in_dim, out_dim = 128, 10
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {
        "w1": jax.random.normal(keys[0], (in_dim, args.hidden)) * 0.05,
        "w2": jax.random.normal(keys[1], (args.hidden, args.hidden)) * 0.05,
        "w3": jax.random.normal(keys[2], (args.hidden, out_dim)) * 0.05,
    }

    def loss_fn(p, x, y):
        h = jax.nn.relu(x @ p["w1"])
        h = jax.nn.relu(h @ p["w2"])
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(h @ p["w3"]) * y, axis=-1))

    @jax.jit
    def train_step(p, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree_util.tree_map(lambda a, g: a - 0.01 * g, p, grads), loss

    rng = np.random.default_rng(host)

    def next_batch():
        with jax.profiler.TraceAnnotation("next_batch"):  # the host's input work, longer on later hosts
            time.sleep(wait_s)
            x = rng.standard_normal((args.batch, in_dim), dtype=np.float32)
            y = np.eye(out_dim, dtype=np.float32)[rng.integers(0, out_dim, size=args.batch)]
        return jax.device_put(x), jax.device_put(y)

    for _ in range(args.warmup):
        params, loss = train_step(params, *next_batch())
    loss.block_until_ready()

    marked = set(marked_steps(host, hosts, args.steps))
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    options.host_tracer_level = 2
    trace_dir = os.path.join(args.work_dir, f"trace{host}")
    wall_ms: dict[int, float] = {}
    multihost_utils.sync_global_devices("start")
    with jax.profiler.trace(trace_dir, profiler_options=options):
        for g in range(args.steps + 1):
            t0 = time.perf_counter()
            if g in marked:
                with jax.profiler.StepTraceAnnotation("train", step_num=g):
                    params, loss = train_step(params, *next_batch())
                    loss.block_until_ready()
                wall_ms[g] = (time.perf_counter() - t0) * 1e3
            else:  # the step runs, unmarked
                params, loss = train_step(params, *next_batch())
                loss.block_until_ready()
    multihost_utils.sync_global_devices("stop")
    found = sorted(glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.xplane.pb")))
    if len(found) != 1:
        print(f"host {host}: expected one .xplane.pb under {trace_dir}, found {found}", file=sys.stderr)
        return 1
    note = {"xplane": found[0], "input_ms": wait_s * 1e3, "wall_ms": {str(k): v for k, v in sorted(wall_ms.items())}}
    with open(os.path.join(args.work_dir, f"host{host}.json"), "w") as f:
        json.dump(note, f)
    jax.distributed.shutdown()
    return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.child is not None:
        return _child(args)
    import jax

    input_ms = _input_ms(args)
    work = tempfile.mkdtemp(prefix="jax-multihost-")
    port = _free_port()
    # One compute thread per process: the hosts share this machine's cores, and should not fight over them.
    xla_flags = " ".join([os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false"]).strip()
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", XLA_FLAGS=xla_flags)
    common = [f"--hosts={args.hosts}", f"--steps={args.steps}", f"--warmup={args.warmup}"]
    common += [f"--input-ms={args.input_ms}", f"--hidden={args.hidden}", f"--batch={args.batch}"]
    common += [f"--port={port}", f"--work-dir={work}", f"--out-dir={args.out_dir}"]
    procs = [
        subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--child={i}", *common], env=env)
        for i in range(args.hosts)
    ]
    failed = False
    deadline = time.monotonic() + args.timeout
    for proc in procs:
        try:
            failed |= proc.wait(timeout=max(1.0, deadline - time.monotonic())) != 0
        except subprocess.TimeoutExpired:
            failed = True
    for proc in procs:  # every process this script started is stopped
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if failed:
        print(f"a process failed; its files are left in {work}", file=sys.stderr)
        return 1

    session = time.strftime("%Y_%m_%d_%H_%M_%S")
    dest = os.path.join(args.out_dir, "plugins", "profile", session)
    os.makedirs(dest, exist_ok=True)
    hosts_note = {}
    for i in range(args.hosts):
        with open(os.path.join(work, f"host{i}.json")) as f:
            note = json.load(f)
        name = f"host{i}.xplane.pb.gz"
        with open(note["xplane"], "rb") as src, gzip.open(os.path.join(dest, name), "wb", compresslevel=9) as out:
            shutil.copyfileobj(src, out)
        hosts_note[f"host{i}"] = {
            "file": f"plugins/profile/{session}/{name}",
            "bytes": os.path.getsize(os.path.join(dest, name)),
            "input_ms": input_ms[i],
            "marked_steps": marked_steps(i, args.hosts, args.steps),
            "wall_ms": note["wall_ms"],
        }
    recording = {
        "made_by": "scripts/record_multihost_cpu.py",
        "jax": jax.__version__,
        "platform": "cpu, one process per host, jax.distributed on 127.0.0.1 (gloo collectives)",
        "options": {
            "hosts": args.hosts,
            "steps": args.steps,
            "warmup": args.warmup,
            "input_ms": input_ms,
            "hidden": args.hidden,
            "batch": args.batch,
        },
        "hosts": hosts_note,
    }
    with open(os.path.join(args.out_dir, "recording.json"), "w") as f:
        json.dump(recording, f, indent=1)
        f.write("\n")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({h: (v["bytes"], v["marked_steps"]) for h, v in hosts_note.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
