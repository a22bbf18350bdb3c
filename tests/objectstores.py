"""Object stores on loopback for tests: S3 (moto's server mode) and GCS (gcp-storage-emulator).

Each server is a child process bound to 127.0.0.1 on a free port. :class:`ObjectStore`
says how to reach it the way a deployment does, through the environment alone:

* S3: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` and ``AWS_ENDPOINT_URL_S3`` (botocore
  reads all three), with the shared config files pointed away so nothing on the machine leaks in;
* GCS: ``STORAGE_EMULATOR_HOST`` (gcsfs then talks to it without credentials).

``start_s3(auth_after=N)`` starts moto with IAM enforcement after its first N requests
(moto's ``INITIAL_NO_AUTH_ACTION_COUNT``), so a test can set up users and objects and then be
refused. Skips the calling test when the server's package is not installed.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port


@dataclass
class ObjectStore:
    """One running store: its protocol (``s3`` or ``gs``), endpoint and the environment to reach it."""

    protocol: str
    endpoint: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] = field(repr=False)

    def url(self, bucket: str, path: str = "") -> str:
        return f"{self.protocol}://{bucket}/{path}".rstrip("/")

    def filesystem(self, **env: str) -> Any:
        """A fresh fsspec filesystem for this store, with the settings of ``self.env`` (plus ``env``)."""
        import fsspec

        settings = {**self.env, **env}
        if self.protocol == "s3":
            return fsspec.filesystem(
                "s3",
                key=settings["AWS_ACCESS_KEY_ID"],
                secret=settings["AWS_SECRET_ACCESS_KEY"],
                endpoint_url=settings["AWS_ENDPOINT_URL_S3"],
                skip_instance_cache=True,
            )
        return fsspec.filesystem(
            "gs", endpoint_url=settings["STORAGE_EMULATOR_HOST"], token="anon", skip_instance_cache=True
        )

    def upload_tree(self, local: Path, bucket: str, prefix: str) -> list[str]:
        """Create ``bucket`` and copy every file under ``local`` to ``bucket/prefix/...``; the keys."""
        fs = self.filesystem()
        fs.mkdir(bucket)
        keys = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = f"{bucket}/{prefix}/{path.relative_to(local).as_posix()}"
            fs.pipe_file(key, path.read_bytes())
            keys.append(key)
        return keys


def s3_env(endpoint: str, key: str = "testing", secret: str = "testing") -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# gcsfs reads this when it is imported: without it, each bucket's type is probed through Google's
# control API with default credentials, which looks for a metadata server off this machine.
GCS_SETTINGS = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "NO_GCE_CHECK": "true"}


def gcs_env(endpoint: str) -> dict[str, str]:
    return {"STORAGE_EMULATOR_HOST": endpoint, **GCS_SETTINGS}


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the store exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def start_s3(auth_after: int | None = None) -> Iterator[ObjectStore]:
    """moto's S3 server on loopback; with ``auth_after``, IAM is enforced after that many requests."""
    pytest.importorskip("moto.server", reason="moto[server] (a test dependency) runs the S3 server")
    pytest.importorskip("s3fs", reason="s3fs (the s3 extra) reads s3:// logdirs")
    port = free_port()
    env = dict(os.environ)
    if auth_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_after)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        yield ObjectStore("s3", endpoint, s3_env(endpoint), proc)
    finally:
        _stop(proc)


@contextmanager
def start_gcs() -> Iterator[ObjectStore]:
    """gcp-storage-emulator on loopback, objects in memory."""
    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator (a test dependency) runs the GCS server")
    if "gcsfs" not in sys.modules:
        os.environ.update(GCS_SETTINGS)  # before gcsfs's first import in this process (see GCS_SETTINGS)
    pytest.importorskip("gcsfs", reason="gcsfs (the gcs extra) reads gs:// logdirs")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port)]
        + ["--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        yield ObjectStore("gs", endpoint, gcs_env(endpoint), proc)
    finally:
        _stop(proc)


@contextmanager
def start_store(protocol: str) -> Iterator[ObjectStore]:
    with start_s3() if protocol == "s3" else start_gcs() as store:
        yield store


def make_logdir(root: Path, profiles: Mapping[str, Path]) -> Path:
    """A local logdir with ``profiles`` (relative path -> source file); ``.gz`` names are gzipped."""
    for rel, source in profiles.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".gz"):
            dest.write_bytes(gzip.compress(source.read_bytes(), mtime=0))
        else:
            shutil.copyfile(source, dest)
    return root
