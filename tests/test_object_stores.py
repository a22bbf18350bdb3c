"""gs:// and s3:// logdirs against real servers on loopback (see objectstores.py).

The same logdir (two runs, plain and gzipped hosts) is uploaded to moto's S3 server and to
the GCS emulator; listing, reading and every tool served through an aggregator and its
workers must give what the local copy gives. Credentials and endpoints reach every process
through its environment only, as in a deployment. A missing bucket and refused credentials
must answer a clear error with the right HTTP status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import orjson
import pytest
from helpers import http_get
from objectstores import ObjectStore, make_logdir, s3_env, start_s3, start_store
from test_serving import Cluster

from conftest import JAX_DATA

BUCKET = "xprof-logs"
PREFIX = "team/logs"
RUN = "2026_01_01_00_00_00"
SUB_RUN = "train/2026_01_02_00_00_00"
PROFILES = {
    f"plugins/profile/{RUN}/host0.xplane.pb": JAX_DATA / "gpu_mlp_train.xplane.pb",
    f"plugins/profile/{RUN}/host1.xplane.pb.gz": JAX_DATA / "gpu_mlp_train_pytrace.xplane.pb",
    f"train/plugins/profile/{SUB_RUN.split('/')[1]}/worker0.xplane.pb.gz": JAX_DATA / "cpu_mlp_train.xplane.pb",
}


@pytest.fixture(scope="module")
def local_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_logdir(tmp_path_factory.mktemp("objectstore") / "logs", PROFILES)


@pytest.fixture(scope="module", params=["s3", "gs"])
def store(request: pytest.FixtureRequest, local_logdir: Path) -> Iterator[ObjectStore]:
    with start_store(request.param) as running:
        running.upload_tree(local_logdir, BUCKET, PREFIX)
        yield running


@pytest.fixture()
def store_env(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """The store's environment in this process too, with fsspec's cached filesystems dropped."""
    import fsspec

    for k, v in store.env.items():
        monkeypatch.setenv(k, v)
    fsspec.get_filesystem_class(store.protocol).clear_instance_cache()
    return store


def test_runs_and_hosts_are_listed(store_env: ObjectStore, local_logdir: Path) -> None:
    from xprof_core.storage.logdir import Logdir

    remote = Logdir(store_env.url(BUCKET, PREFIX))
    runs = remote.runs()
    assert remote.problems == [] and remote.root_error is None
    local = {r.name: r for r in Logdir(local_logdir).runs()}
    assert [r.name for r in runs] == [SUB_RUN, RUN] == list(local)
    for run in runs:
        assert [(h.name, h.compressed, h.size_bytes) for h in run.hosts] == [
            (h.name, h.compressed, h.size_bytes) for h in local[run.name].hosts
        ]
        assert all(h.url.startswith(f"{store_env.protocol}://{BUCKET}/{PREFIX}/") for h in run.hosts)
    assert remote.run(SUB_RUN).host_names == ["worker0"]


def test_hosts_are_read_and_decoded(store_env: ObjectStore, local_logdir: Path) -> None:
    import xprof_core
    from xprof_core.storage.logdir import Logdir, open_host_bytes

    run = Logdir(store_env.url(BUCKET, PREFIX)).run(RUN)
    for host in run.hosts:
        source = PROFILES[f"plugins/profile/{RUN}/{Path(host.url).name}"]
        assert bytes(open_host_bytes(host.url)) == source.read_bytes(), host.url  # .gz comes back gunzipped
        assert xprof_core.load(host.url).num_events == xprof_core.load(source).num_events


def test_every_tool_is_served_through_workers(store: ObjectStore, local_logdir: Path) -> None:
    from xprof_core.execute import run_tool_json
    from xprof_core.tools import tool_names

    cluster = Cluster(store.url(BUCKET, PREFIX), env=store.env, workers=2)
    try:
        status, body, _ = http_get(f"{cluster.base}/runs")
        assert status == 200 and json.loads(body) == [SUB_RUN, RUN]
        status, body, _ = http_get(f"{cluster.base}/hosts?run={RUN}")
        assert [h["hostname"] for h in json.loads(body)] == ["host0", "host1"]
        served_by: set[str] = set()
        for tool in tool_names():
            status, body, headers = http_get(f"{cluster.base}/data?run={RUN}&tag={tool}")
            assert status == 200, (tool, body[:300])
            # Tools that share a cached partial with an earlier one need no new map task.
            served_by.update(w for w in headers.get("X-Xprof-Workers", "").split(",") if w)
            assert served_by, f"{tool}: no worker has mapped a host yet"
            expected = run_tool_json(tool, (local_logdir, RUN))
            assert orjson.loads(body) == orjson.loads(expected), tool
        assert served_by <= {"worker-0", "worker-1"}, served_by
        status, body, _ = http_get(f"{cluster.base}/data_csv?run={SUB_RUN}&tag=input_pipeline_analyzer")
        assert status == 200 and body.decode().startswith("Step,Step time (ms)")
    finally:
        cluster.stop()
    assert [p.returncode for p in cluster.procs] == [0] * len(cluster.procs)


@pytest.mark.parametrize("protocol", ["s3", "gs"])
def test_missing_bucket_is_a_clear_404(protocol: str) -> None:
    with start_store(protocol) as running:
        cluster = Cluster(running.url("no-such-bucket", "logs"), env=running.env, workers=1)
        try:
            status, body, _ = http_get(f"{cluster.base}/runs")
            assert status == 404, body[:300]
            error = json.loads(body)["error"]
            assert "no-such-bucket" in error and "does not exist" in error, error
            status, body, _ = http_get(f"http://127.0.0.1:{cluster.port}/readyz")
            assert status == 503 and "does not exist" in json.loads(body)["error"]
        finally:
            cluster.stop()


def test_refused_credentials_are_a_clear_403(local_logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IAM enforced: an unknown key gets 403 from the aggregator; a key without a policy, PERMISSION_DENIED.

    moto's server checks signatures of listings with a ``/`` in the prefix wrongly once IAM is
    on, so listings are refused here for unknown keys only; reads (GetObject) are signed
    correctly and are refused by policy.
    """
    import fsspec
    import grpc
    from test_serving import call_map

    from xprof_core.serve.worker import WorkerConfig, create_server

    # moto enforces IAM once it has served this many requests: enough for the setup below, then
    # requests with an unknown key use up the rest until one is refused.
    with start_s3(auth_after=60) as s3:
        client = dict(endpoint_url=s3.endpoint, region_name="us-east-1")
        s3.upload_tree(local_logdir, BUCKET, PREFIX)
        iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **client)
        keys = {}
        for user in ("reader", "nobody"):
            iam.create_user(UserName=user)
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        stranger = boto3.client("s3", aws_access_key_id="stranger", aws_secret_access_key="x", **client)
        for _ in range(60):
            try:
                stranger.list_buckets()
            except botocore.exceptions.ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403
                break
        else:
            raise AssertionError("moto never started enforcing IAM")

        url = s3.url(BUCKET, PREFIX)
        cluster = Cluster(url, env=s3_env(s3.endpoint, "stranger", "x"), workers=1)
        try:
            status, body, _ = http_get(f"{cluster.base}/runs")
            assert status == 403, body[:300]
            error = json.loads(body)["error"]
            assert "access denied" in error and url in error, error
            status, body, _ = http_get(f"http://127.0.0.1:{cluster.port}/readyz")
            assert status == 503 and "access denied" in json.loads(body)["error"]
        finally:
            cluster.stop()

        # A worker reads a host with its own key from the environment: refused without a policy
        # (PERMISSION_DENIED, never retried elsewhere), read with one.
        host_url = f"{url}/plugins/profile/{RUN}/host0.xplane.pb"
        for user, expected in (("nobody", grpc.StatusCode.PERMISSION_DENIED), ("reader", None)):
            for k, v in s3_env(s3.endpoint, keys[user]["AccessKeyId"], keys[user]["SecretAccessKey"]).items():
                monkeypatch.setenv(k, v)
            fsspec.get_filesystem_class("s3").clear_instance_cache()
            handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=[url], worker_id=user))
            try:
                if expected is None:
                    partial, last = call_map(f"127.0.0.1:{handle.port}", "overview_page", host_url)
                    assert last.worker_id == "reader" and len(partial["steps"]["step_num"]) > 0
                else:
                    with pytest.raises(grpc.RpcError) as err:
                        call_map(f"127.0.0.1:{handle.port}", "overview_page", host_url)
                    assert err.value.code() == expected
                    assert "access denied" in (err.value.details() or "")
            finally:
                handle.stop(grace_s=0)
