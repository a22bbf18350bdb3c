"""Record small, real JAX profiles of a tiny training loop.

The profiles under ``tests/data/jax/`` were made with this script. Each run
trains a two-layer MLP with plain JAX (no optimiser library) for a few steps,
feeds every step a fresh batch made on the host (so the profile holds
host-to-device copies and input time), and marks each step with
``jax.profiler.StepTraceAnnotation("train", step_num=i)``, which is how XProf
finds steps in JAX profiles.

Usage::

    python scripts/make_jax_profiles.py --out-dir DIR [--name NAME]
        [--steps N] [--hidden H] [--python-tracer] [--platform cpu|gpu]

It writes ``DIR/NAME.xplane.pb`` (the XSpace of the one host) and a
``DIR/NAME.txt`` note with the JAX version, device kind and the options used.
Larger profiles for the benchmarks come from the same script with more steps
and ``--python-tracer``.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True, help="folder that receives NAME.xplane.pb and NAME.txt")
    p.add_argument("--name", default="jax_mlp_train", help="base name of the output files")
    p.add_argument("--steps", type=int, default=20, help="training steps recorded (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="steps run before tracing starts")
    p.add_argument("--hidden", type=int, default=512, help="hidden width of the MLP")
    p.add_argument("--batch", type=int, default=256, help="batch size")
    p.add_argument("--python-tracer", action="store_true", help="also record Python function calls")
    p.add_argument("--platform", default=None, help="JAX platform to use (cpu, gpu); default: JAX's choice")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.platform:
        os.environ["JAX_PLATFORMS"] = args.platform
    import jax
    import jax.numpy as jnp
    import numpy as np

    in_dim, out_dim = 256, 10
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {
        "w1": jax.random.normal(k1, (in_dim, args.hidden)) * 0.05,
        "b1": jnp.zeros((args.hidden,)),
        "w2": jax.random.normal(k2, (args.hidden, args.hidden)) * 0.05,
        "b2": jnp.zeros((args.hidden,)),
        "w3": jax.random.normal(k3, (args.hidden, out_dim)) * 0.05,
    }

    def loss_fn(p, x, y):
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        h = jax.nn.relu(h @ p["w2"] + p["b2"])
        logits = h @ p["w3"]
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))

    @jax.jit
    def train_step(p, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree_util.tree_map(lambda a, g: a - 0.01 * g, p, grads), loss

    rng = np.random.default_rng(0)

    def next_batch():
        # Host-side input work, so the profile shows input time per step.
        x = rng.standard_normal((args.batch, in_dim), dtype=np.float32)
        labels = rng.integers(0, out_dim, size=args.batch)
        y = np.eye(out_dim, dtype=np.float32)[labels]
        return jax.device_put(x), jax.device_put(y)

    for _ in range(args.warmup):
        params, loss = train_step(params, *next_batch())
    loss.block_until_ready()

    options = None
    if hasattr(jax.profiler, "ProfileOptions"):
        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 1 if args.python_tracer else 0
        options.host_tracer_level = 2
    tmp = tempfile.mkdtemp(prefix="jax-profile-")
    t0 = time.perf_counter()
    kwargs = {"profiler_options": options} if options is not None else {}
    with jax.profiler.trace(tmp, **kwargs):
        for step in range(args.steps):
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                params, loss = train_step(params, *next_batch())
                loss.block_until_ready()
    elapsed = time.perf_counter() - t0

    found = sorted(glob.glob(os.path.join(tmp, "plugins", "profile", "*", "*.xplane.pb")))
    if len(found) != 1:
        print(f"expected one .xplane.pb under {tmp}, found {found}", file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    dest = os.path.join(args.out_dir, f"{args.name}.xplane.pb")
    shutil.copyfile(found[0], dest)
    device = jax.devices()[0]
    note = (
        f"file: {os.path.basename(dest)} ({os.path.getsize(dest)} bytes)\n"
        f"jax {jax.__version__}, jaxlib {getattr(jax.lib, '__version__', '?')}\n"
        f"device: {device.platform} {device.device_kind} x{jax.device_count()}\n"
        f"steps={args.steps} warmup={args.warmup} hidden={args.hidden} batch={args.batch} "
        f"python_tracer={args.python_tracer}\n"
        f"traced wall time: {elapsed:.3f} s, final loss {float(loss):.4f}\n"
    )
    with open(os.path.join(args.out_dir, f"{args.name}.txt"), "w") as f:
        f.write(note)
    shutil.rmtree(tmp, ignore_errors=True)
    print(note, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
