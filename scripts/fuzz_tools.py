#!/usr/bin/env python3
"""Fuzz every tool for as long as you like; save, minimise and replay what breaks.

    PYTHONPATH=src python3 scripts/fuzz_tools.py --minutes 30 --out fuzz-findings
    PYTHONPATH=src python3 scripts/fuzz_tools.py --replay fuzz-findings/crash-*.xplane.pb

The cases are the ones ``tests/test_fuzz_tools.py`` draws (see ``tests/fuzzing.py``), here
from a random seed that is printed so a run can be repeated. Each case runs every tool in a
child process; a crash (signal), a hang (one tool run over 10 s), an exception other than
``xprof_core.errors.XprofError`` or an answer that is not JSON is a finding: its input is
saved under ``--out`` with a note, and with ``--minimize`` cut down to a small input that
still shows the same failure. The exit status is 1 when anything was found.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzzing import Finding, ToolRunner, fuzz, minimize, open_bug, seeds, signature  # noqa: E402


def child_env() -> dict[str, str]:
    """This environment with the xprof_core that this process imports first on PYTHONPATH."""
    import os

    import xprof_core

    parent = str(Path(xprof_core.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz (default 10)")
    parser.add_argument("--cases", type=int, default=None, help="stop after this many cases")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="where findings are saved")
    parser.add_argument("--minimize", action="store_true", help="cut each new kind of finding down")
    parser.add_argument("--hang-seconds", type=float, default=10.0, help="one tool run longer than this hangs")
    parser.add_argument("--replay", nargs="+", type=Path, help="run these files instead of fuzzing")
    args = parser.parse_args(argv)

    with ToolRunner(env=child_env(), hang_s=args.hang_seconds) as runner:
        if args.replay:
            for path in args.replay:
                raw = path.read_bytes()
                gz = path.name.endswith(".gz")
                findings = runner.run(gzip.decompress(raw) if gz else raw, gz=gz)
                print(f"{path}: {'; '.join(f'{f.kind} in {f.tool}' for f in findings) or 'ok'}")
                for finding in findings:
                    print(f"  {finding.detail.strip().splitlines()[-1] if finding.detail.strip() else ''}")
            print(runner.stats.summary())
            return 1 if runner.stats.findings else 0

        seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
        print(f"random seed {seed}; {len(seeds())} seed files; findings go to {args.out}/", flush=True)
        rng = random.Random(seed)
        kinds: dict[tuple[str, str, str], Finding] = {}
        last_report = 0
        for seed_file, findings in fuzz(runner, args.minutes * 60, rng, max_cases=args.cases):
            for finding in findings:
                saved = finding.save(args.out)
                known = open_bug(finding)
                kind, tool, where = signature(finding)
                # One entry per bug: a crash or hang per tool run, an exception per place.
                key = (kind, tool if kind != "exception" else "", where)
                if key not in kinds:
                    kinds[key] = finding
                    label = " | ".join(k for k in key if k)
                    note = f"open bug, see tests/data/hostile/{known}" if known else "NEW"
                    print(f"{note}: {label} (seed {seed_file.name}) -> {saved}", flush=True)
            if runner.stats.cases - last_report >= 500:
                last_report = runner.stats.cases
                print(runner.stats.summary(), flush=True)
        print(runner.stats.summary())
        new = {key: f for key, f in kinds.items() if open_bug(f) is None}
        print(f"{len(kinds)} distinct failures, {len(new)} of them new (not in fuzzing.OPEN_BUGS)")
        if args.minimize:
            for key, finding in new.items():
                small = minimize(runner, finding)
                cut = Finding(finding.kind, finding.tool, finding.detail, small, finding.gz)
                path = cut.save(args.out / "minimized")
                print(f"minimized {' | '.join(k for k in key if k)}: {len(finding.data)} -> {len(small)} bytes: {path}")
                if len(small) <= 512:
                    print(f"  {small.hex()}")
        return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
