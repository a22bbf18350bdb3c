"""Record two real JAX CPU profiles of the same program, differing by one change.

The pair under ``tests/data/jax_diff/`` was made with this script; it is what
the ``diff`` tool is tested on (HTTP, CLI and UI). Both runs train the same
MLP as ``make_jax_profiles.py`` (plain JAX, a fresh host batch per step, steps
marked with ``jax.profiler.StepTraceAnnotation("train", step_num=i)``) with
the same seed, batch and step count. The one change: run ``extra_layer`` adds
a second hidden layer of the same width (one more matmul, bias and ReLU in
the forward pass, their gradients in the backward pass), so B is slower per
step, has ops that A lacks, and XLA numbers its fusions differently.

Usage::

    python scripts/record_diff_profiles.py --logdir DIR [--steps N] [--hidden H]

It writes a logdir with two runs, each one session holding one gzipped host
file, and a note per run::

    DIR/base/plugins/profile/<session>/cpu.xplane.pb.gz
    DIR/extra_layer/plugins/profile/<session>/cpu.xplane.pb.gz
    DIR/<run>.txt

Each run is recorded in its own Python process, so the second compilation
starts from a fresh XLA state, as a real "before/after" pair would.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time

VARIANTS = ("base", "extra_layer")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logdir", required=True, help="folder that receives the two runs")
    p.add_argument("--steps", type=int, default=16, help="training steps recorded per run (default 16)")
    p.add_argument("--warmup", type=int, default=3, help="steps run before tracing starts")
    p.add_argument("--hidden", type=int, default=512, help="hidden width of the MLP")
    p.add_argument("--batch", type=int, default=256, help="batch size")
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one run, in a child process
    return p.parse_args(argv)


def record(args: argparse.Namespace) -> int:
    """Record one run (``args.variant``) into ``args.logdir/<variant>``."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # One compute thread: step times then measure the program, not how busy the other cores are.
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import jax
    import jax.numpy as jnp
    import numpy as np

    extra = args.variant == "extra_layer"
    in_dim, out_dim = 256, 10
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {
        "w1": jax.random.normal(k1, (in_dim, args.hidden)) * 0.05,
        "b1": jnp.zeros((args.hidden,)),
        "w2": jax.random.normal(k2, (args.hidden, args.hidden)) * 0.05,
        "b2": jnp.zeros((args.hidden,)),
        "w3": jax.random.normal(k3, (args.hidden, out_dim)) * 0.05,
    }
    if extra:
        params["w2b"] = jax.random.normal(k4, (args.hidden, args.hidden)) * 0.05
        params["b2b"] = jnp.zeros((args.hidden,))

    def loss_fn(p, x, y):
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        h = jax.nn.relu(h @ p["w2"] + p["b2"])
        if extra:
            h = jax.nn.relu(h @ p["w2b"] + p["b2b"])
        logits = h @ p["w3"]
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))

    @jax.jit
    def train_step(p, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree_util.tree_map(lambda a, g: a - 0.01 * g, p, grads), loss

    rng = np.random.default_rng(0)

    def next_batch():
        x = rng.standard_normal((args.batch, in_dim), dtype=np.float32)
        y = np.eye(out_dim, dtype=np.float32)[rng.integers(0, out_dim, size=args.batch)]
        return jax.device_put(x), jax.device_put(y)

    for _ in range(args.warmup):
        params, loss = train_step(params, *next_batch())
    loss.block_until_ready()

    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    options.host_tracer_level = 2
    tmp = tempfile.mkdtemp(prefix="jax-diff-profile-")
    t0 = time.perf_counter()
    with jax.profiler.trace(tmp, profiler_options=options):
        for step in range(args.steps):
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                params, loss = train_step(params, *next_batch())
                loss.block_until_ready()
    elapsed = time.perf_counter() - t0

    found = sorted(glob.glob(os.path.join(tmp, "plugins", "profile", "*", "*.xplane.pb")))
    if len(found) != 1:
        print(f"expected one .xplane.pb under {tmp}, found {found}", file=sys.stderr)
        return 1
    session = os.path.basename(os.path.dirname(found[0]))
    run_dir = os.path.join(args.logdir, args.variant)
    shutil.rmtree(run_dir, ignore_errors=True)
    session_dir = os.path.join(run_dir, "plugins", "profile", session)
    os.makedirs(session_dir)
    dest = os.path.join(session_dir, "cpu.xplane.pb.gz")
    with open(found[0], "rb") as src, gzip.GzipFile(dest, "wb", compresslevel=9, mtime=0) as out:
        shutil.copyfileobj(src, out)
    note = (
        f"run: {args.variant}/{session} ({os.path.getsize(dest)} bytes gzipped, "
        f"{os.path.getsize(found[0])} bytes raw)\n"
        f"jax {jax.__version__}, device: {jax.devices()[0].platform} x{jax.device_count()}\n"
        f"steps={args.steps} warmup={args.warmup} hidden={args.hidden} batch={args.batch} "
        f"extra_layer={extra}\n"
        f"traced wall time: {elapsed:.3f} s, final loss {float(loss):.4f}\n"
    )
    with open(os.path.join(args.logdir, f"{args.variant}.txt"), "w") as f:
        f.write(note)
    shutil.rmtree(tmp, ignore_errors=True)
    print(note, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.variant:
        return record(args)
    os.makedirs(args.logdir, exist_ok=True)
    common = [f"--logdir={args.logdir}", f"--steps={args.steps}", f"--warmup={args.warmup}"]
    common += [f"--hidden={args.hidden}", f"--batch={args.batch}"]
    for variant in VARIANTS:
        code = subprocess.call([sys.executable, os.path.abspath(__file__), *common, f"--variant={variant}"])
        if code:
            return code
        time.sleep(1.1)  # distinct session timestamps (JAX names sessions by the second)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
