"""Remote read throughput: host files read from S3 (moto's server) and GCS (the emulator) on loopback.

Both servers are Python processes on this machine, so the figures measure the client path
(fsspec, s3fs or gcsfs, HTTP on loopback, the server's own cost) rather than a cloud's
network: they bound what the storage layer adds per byte, and show the gzip cost. Sizes:
a 32 MiB object read whole, and a real 1 MB JAX profile read and decoded.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
import warnings
from collections.abc import Iterator

import pytest

from figures import ROOT, record

sys.path.insert(0, str(ROOT / "tests"))
from objectstores import ObjectStore, start_store  # noqa: E402

BUCKET = "bench"
PROFILE = ROOT / "tests" / "data" / "jax" / "gpu_mlp_train_long.xplane.pb"
BLOB_BYTES = 32 << 20


@pytest.fixture(scope="module", params=["s3", "gs"])
def store(request: pytest.FixtureRequest) -> Iterator[ObjectStore]:
    with start_store(request.param) as running:
        fs = running.filesystem()
        fs.mkdir(BUCKET)
        with warnings.catch_warnings():  # aiohttp warns about uploading one large body; it is only setup
            warnings.simplefilter("ignore", ResourceWarning)
            fs.pipe_file(f"{BUCKET}/blob.xplane.pb", os.urandom(BLOB_BYTES))
        fs.pipe_file(f"{BUCKET}/real.xplane.pb", PROFILE.read_bytes())
        fs.pipe_file(f"{BUCKET}/real.xplane.pb.gz", gzip.compress(PROFILE.read_bytes()))
        for k, v in running.env.items():
            os.environ[k] = v
        yield running
        for k in running.env:
            os.environ.pop(k, None)


def _fresh(store: ObjectStore) -> None:
    import fsspec

    fsspec.get_filesystem_class(store.protocol).clear_instance_cache()


def test_read_throughput(benchmark, store: ObjectStore) -> None:  # type: ignore[no-untyped-def]
    from xprof_core.storage.logdir import open_host_bytes

    url = store.url(BUCKET, "blob.xplane.pb")
    _fresh(store)
    data = benchmark.pedantic(open_host_bytes, args=(url,), rounds=5, iterations=1, warmup_rounds=1)
    assert len(data) == BLOB_BYTES
    best = benchmark.stats.stats.min
    benchmark.extra_info["mb_per_s"] = BLOB_BYTES / 1e6 / best
    mb_s = BLOB_BYTES / 1e6 / best
    record(f"{store.protocol}:// read, {BLOB_BYTES >> 20} MiB object: {best * 1e3:.0f} ms ({mb_s:.0f} MB/s)")


@pytest.mark.parametrize("name", ["real.xplane.pb", "real.xplane.pb.gz"])
def test_load_real_profile(benchmark, store: ObjectStore, name: str) -> None:  # type: ignore[no-untyped-def]
    import xprof_core

    url = store.url(BUCKET, name)
    _fresh(store)
    xs = benchmark.pedantic(xprof_core.load, args=(url,), rounds=5, iterations=1, warmup_rounds=1)
    assert xs.num_events == xprof_core.load(PROFILE).num_events
    best = benchmark.stats.stats.min
    t0 = time.perf_counter()
    xprof_core.load(PROFILE)
    local = time.perf_counter() - t0
    record(
        f"{store.protocol}:// load {name} ({PROFILE.stat().st_size / 1e6:.2f} MB profile): {best * 1e3:.0f} ms "
        f"(local file {local * 1e3:.0f} ms)"
    )
