"""Every tool over mutated profiles, in a child process: no crash, no hang, no foreign exception.

The cases come from hypothesis (a fixed, derandomised set, so a run is reproducible) drawing
message- and byte-level mutations of the seeds in :mod:`fuzzing`; the whole module is bounded
to a couple of minutes on two cores (``XPROF_FUZZ_EXAMPLES`` changes the count).
``scripts/fuzz_tools.py`` runs the same cases for as long as one likes, with random seeds, and
saves what it finds. ``scripts/sanitize_check.sh`` runs this module again against an
AddressSanitizer build.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzing import (
    HOSTILE,
    KINDS,
    OPEN_BUGS,
    SELFTEST_CASE,
    Finding,
    Mutation,
    Seed,
    ToolRunner,
    build_case,
    new_findings,
    open_bug,
    seeds,
    tool_runs,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import subprocess_env

EXAMPLES = int(os.environ.get("XPROF_FUZZ_EXAMPLES", "1500"))

MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(min_value=0, max_value=2**32 - 1),
        st.integers(min_value=0, max_value=2**16 - 1),
        st.binary(min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def runner() -> Iterator[ToolRunner]:
    with ToolRunner(env=subprocess_env()) as tool_runner:
        yield tool_runner
        print(f"\nfuzz: {tool_runner.stats.summary()}")


def _report(findings: list[Finding]) -> str:
    return "\n\n".join(map(str, findings))


def test_seeds_and_hostile_corpus_pass_every_tool(runner: ToolRunner) -> None:
    """Unmutated seeds and the crafted files: every tool answers or raises the project's error."""
    assert len(seeds()) >= len(list(HOSTILE.glob("*.xplane.pb"))) + 4
    for seed in seeds():
        if Path(seed.name).name in OPEN_BUGS.values():
            continue  # test_open_bugs_still_reproduce runs these
        findings = new_findings(runner.run(seed.data))  # (an open bug is tracked by the test below)
        assert not findings, f"{seed.name}:\n{_report(findings)}"
        findings = new_findings(runner.run(seed.data, gz=True))  # the same through the .gz reader
        assert not findings, f"{seed.name} (gz):\n{_report(findings)}"


class OpenBugStillThere(Exception):
    pass


@pytest.mark.parametrize(("signature", "name"), sorted(OPEN_BUGS.items()), ids=lambda v: str(v).split(".")[0])
@pytest.mark.xfail(
    strict=True, raises=OpenBugStillThere, reason="an open bug; once this passes, drop its entry from OPEN_BUGS"
)
def test_open_bugs_still_reproduce(runner: ToolRunner, signature: tuple[str, str], name: str) -> None:
    findings = runner.run((HOSTILE / name).read_bytes())
    other = [f for f in findings if open_bug(f) != name]
    assert not other, _report(other)
    if findings:
        raise OpenBugStillThere(f"{name} still shows {signature}")


# A failing example's repr can pass hypothesis's size warning, which would hide the failure itself.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(seed=st.sampled_from(seeds()), mutations=MUTATIONS, gz=st.integers(0, 19).map(lambda i: i == 0))
def test_every_tool_survives_mutated_profiles(
    runner: ToolRunner, seed: Seed, mutations: list[Mutation], gz: bool
) -> None:
    findings = new_findings(runner.run(build_case(seed, mutations), gz=gz))
    assert not findings, f"seed {seed.name}, mutations {mutations}:\n{_report(findings)}"


# --- the harness itself: it must see a crash, a hang and a foreign exception ---


@pytest.mark.parametrize(
    ("fault", "kind", "detail"),
    [("segv", "crash", "SEGV"), ("hang", "hang", "no answer within 1 s"), ("raise", "exception", "RuntimeError")],
)
def test_harness_reports_each_kind_of_failure(fault: str, kind: str, detail: str) -> None:
    with ToolRunner(env=subprocess_env(XPROF_FUZZ_SELFTEST=fault), hang_s=1.0) as runner:
        findings = runner.run(SELFTEST_CASE)
        # A crash or a hang ends the case at the first tool; an exception is reported by each tool.
        expected = len(tool_runs()) if kind == "exception" else 1
        assert [f.kind for f in findings] == [kind] * expected, _report(findings)
        assert findings[0].tool == tool_runs()[0][0] and detail in findings[0].detail
        assert findings[0].data == SELFTEST_CASE
        # After a crash or a hang the child is restarted and the next case runs normally.
        assert runner.run(seeds()[0].data) == []
        assert runner.stats.restarts == (0 if kind == "exception" else 1)
        assert runner.stats.cases == 2
