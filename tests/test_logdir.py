"""Tests for run and host discovery (xprof_core.storage.logdir) on memory://, local and real logdirs."""

from __future__ import annotations

import gzip
import logging
import mmap
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import fsspec.core
import pytest

from xprof_core.errors import DecodeError, ProfileNotFoundError, XprofError
from xprof_core.storage.logdir import (
    Host,
    HostNotFoundError,
    Logdir,
    LogdirError,
    MissingExtraError,
    Run,
    RunNotFoundError,
    host_name_from_file,
    open_host_bytes,
)

from conftest import subprocess_env

REAL_DEMO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "openxla-xprof" / "demo"

PAYLOAD_A = b"\x0a\x03abc" * 10
PAYLOAD_GZ = b"\x0a\x04gzip" * 7

# A logdir with root-level sessions, a TensorBoard sub-run, a nested sub-run, a session whose
# name is not a timestamp, and files that are not host profiles.
LAYOUT: dict[str, bytes] = {
    "plugins/profile/2024_01_01_00_00_00/host_a.xplane.pb": PAYLOAD_A,
    "plugins/profile/2024_01_01_00_00_00/host_b.xplane.pb.gz": gzip.compress(PAYLOAD_GZ),
    "plugins/profile/2024_01_01_00_00_00/host_a.trace.json.gz": gzip.compress(b"{}"),
    "plugins/profile/2024_01_01_00_00_00/notes.txt": b"not a profile",
    "plugins/profile/2024_03_05_10_00_00/host_c.xplane.pb": b"c" * 5,
    "train/events.out.tfevents.1": b"events",
    "train/plugins/profile/2024_02_01_00_00_00/worker_1.xplane.pb": b"1" * 11,
    "train/plugins/profile/2024_02_01_00_00_00/worker_0.xplane.pb": b"0" * 10,
    "train/plugins/profile/custom_session/h.xplane.pb": b"h",
    "a/b/plugins/profile/2023_12_31_23_59_59/x.xplane.pb": b"",
    "README.md": b"not a run",
    "checkpoints/ckpt-1/data": b"weights",
}

EXPECTED_ORDER = [
    "2024_03_05_10_00_00",
    "train/2024_02_01_00_00_00",
    "2024_01_01_00_00_00",
    "a/b/2023_12_31_23_59_59",
    "train/custom_session",
]

TRAVERSAL_NAMES = [
    "..",
    "../outside/s",
    "a/../../outside/s",
    "x/..",
    "./2024_01_01_00_00_00",
    "/etc/passwd",
    "/2024_01_01_00_00_00",
    "..\\outside\\s",
    "train\\2024_02_01_00_00_00",
    "a//2023_12_31_23_59_59",
    "",
    "file:///etc/passwd",
]


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def memory_logdir() -> Iterator[str]:
    """A fresh memory:// root, removed (with everything under it) after the test."""
    fs = fsspec.filesystem("memory")
    root = f"/xprof-test-{uuid.uuid4().hex}"
    yield f"memory://{root}"
    if fs.exists(root):
        fs.rm(root, recursive=True)
    assert not any(path.startswith(root) for path in fs.store)
    fs.pseudo_dirs[:] = [d for d in fs.pseudo_dirs if not d.startswith(root)]


def build_memory(url: str, files: dict[str, bytes]) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    for rel, data in files.items():
        fs.pipe_file(f"{root}/{rel}", data)


def build_local(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def local_logdir(tmp_path: Path) -> Path:
    root = tmp_path / "logdir"
    build_local(root, LAYOUT)
    return root


def set_mode_recursive(root: Path, dir_mode: int, file_mode: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), file_mode)
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), dir_mode)
    os.chmod(root, dir_mode)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime (ns)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def blocks_reads(path: Path) -> bool:
    """Whether chmod 000 really stops this process from listing (it does not for root)."""
    try:
        os.listdir(path)
    except PermissionError:
        return True
    return False


def check_layout(logdir: Logdir, runs: list[Run], *, local: bool) -> None:
    """The assertions shared by the memory:// and local runs of LAYOUT."""
    assert [run.name for run in runs] == EXPECTED_ORDER
    by_name = {run.name: run for run in runs}
    assert all(run.problems == [] for run in runs)
    assert logdir.problems == []

    first = by_name["2024_01_01_00_00_00"]
    assert first.session == "2024_01_01_00_00_00"
    assert first.host_names == ["host_a", "host_b"]  # trace.json.gz and notes.txt ignored
    host_a, host_b = first.hosts
    assert host_a.size_bytes == len(PAYLOAD_A) and not host_a.compressed
    assert host_b.compressed and host_b.url.endswith("host_b.xplane.pb.gz")
    assert by_name["train/2024_02_01_00_00_00"].host_names == ["worker_0", "worker_1"]
    assert [h.size_bytes for h in by_name["train/2024_02_01_00_00_00"].hosts] == [10, 11]
    assert by_name["a/b/2023_12_31_23_59_59"].host_names == ["x"]
    assert by_name["train/custom_session"].host_names == ["h"]

    for run in runs:
        assert run.session_url.endswith("/plugins/profile/" + run.session)
        for host in run.hosts:
            assert host.url.startswith(run.session_url + "/")
            if local:
                assert "://" not in host.url and os.path.isabs(host.url)
            else:
                assert host.url.startswith("memory://")

    assert bytes(open_host_bytes(host_a.url)) == PAYLOAD_A
    assert open_host_bytes(host_b.url) == PAYLOAD_GZ
    assert bytes(logdir.open_host_bytes(host_b)) == PAYLOAD_GZ
    assert bytes(open_host_bytes(by_name["a/b/2023_12_31_23_59_59"].hosts[0].url)) == b""


# -- discovery -------------------------------------------------------------------------------------


def test_runs_memory(memory_logdir: str) -> None:
    build_memory(memory_logdir, LAYOUT)
    logdir = Logdir(memory_logdir)
    check_layout(logdir, logdir.runs(), local=False)


def test_runs_local(local_logdir: Path) -> None:
    logdir = Logdir(local_logdir)
    check_layout(logdir, logdir.runs(), local=True)


def test_runs_local_file_url_and_trailing_slash(local_logdir: Path) -> None:
    for url in (f"file://{local_logdir}", f"{local_logdir}/"):
        runs = Logdir(url).runs()
        assert [run.name for run in runs] == EXPECTED_ORDER
        assert runs[0].hosts[0].url == str(local_logdir / "plugins/profile/2024_03_05_10_00_00/host_c.xplane.pb")


def test_local_host_bytes_are_mmap(local_logdir: Path) -> None:
    run = Logdir(local_logdir).run("2024_01_01_00_00_00")
    data = open_host_bytes(run.host("host_a").url)
    assert isinstance(data, mmap.mmap)
    try:
        assert data[:] == PAYLOAD_A
        with pytest.raises(TypeError):
            data[0] = 0  # read-only mapping
    finally:
        data.close()
    empty = Logdir(local_logdir).run("a/b/2023_12_31_23_59_59").hosts[0]
    assert open_host_bytes(empty.url) == b""


def test_open_host_bytes_errors(tmp_path: Path, memory_logdir: str) -> None:
    with pytest.raises(ProfileNotFoundError):
        open_host_bytes(tmp_path / "missing.xplane.pb")
    with pytest.raises(ProfileNotFoundError):
        open_host_bytes(f"{memory_logdir}/missing.xplane.pb")
    bad = tmp_path / "bad.xplane.pb.gz"
    bad.write_bytes(b"definitely not gzip")
    with pytest.raises(DecodeError):
        open_host_bytes(bad)
    truncated = tmp_path / "truncated.xplane.pb.gz"
    truncated.write_bytes(gzip.compress(PAYLOAD_A)[:-6])
    with pytest.raises(DecodeError):
        open_host_bytes(truncated)


def test_empty_and_missing_logdir(tmp_path: Path, memory_logdir: str) -> None:
    assert Logdir(tmp_path).runs() == []
    missing = Logdir(tmp_path / "nope")
    assert missing.runs() == []
    assert len(missing.problems) == 1 and "does not exist" in missing.problems[0]
    with pytest.raises(RunNotFoundError):
        missing.run("anything")
    a_file = tmp_path / "file.txt"
    a_file.write_bytes(b"x")
    not_dir = Logdir(a_file)
    assert not_dir.runs() == []
    assert "not a directory" in not_dir.problems[0]
    assert Logdir(memory_logdir).runs() == []


def test_sort_order_falls_back_to_names(memory_logdir: str) -> None:
    build_memory(
        memory_logdir,
        {
            f"{sub}plugins/profile/{session}/h.xplane.pb": b"x"
            for sub, session in [
                ("", "zeta"),
                ("", "alpha"),
                ("b/", "2022_05_05_05_05_05"),
                ("a/", "2022_05_05_05_05_05"),
                ("", "2021_01_01_00_00_00_suffix"),
                ("", "2023_01_01_00_00_00"),
            ]
        },
    )
    names = [run.name for run in Logdir(memory_logdir).runs()]
    assert names == [
        "2023_01_01_00_00_00",
        "a/2022_05_05_05_05_05",
        "b/2022_05_05_05_05_05",
        "2021_01_01_00_00_00_suffix",
        "alpha",
        "zeta",
    ]


def test_uncompressed_host_wins_over_gz(memory_logdir: str) -> None:
    build_memory(
        memory_logdir,
        {
            "plugins/profile/s/h.xplane.pb.gz": gzip.compress(b"gz"),
            "plugins/profile/s/h.xplane.pb": b"plain",
            "plugins/profile/s/g.xplane.pb.gz": gzip.compress(b"only gz"),
        },
    )
    run = Logdir(memory_logdir).run("s")
    assert run.host_names == ["g", "h"]
    assert not run.host("h").compressed and run.host("h").size_bytes == 5
    assert run.host("g").compressed


def test_session_without_hosts_is_listed(memory_logdir: str) -> None:
    build_memory(memory_logdir, {"plugins/profile/s/only.trace.json.gz": b"x"})
    runs = Logdir(memory_logdir).runs()
    assert [(run.name, run.hosts) for run in runs] == [("s", [])]


def test_host_name_from_file() -> None:
    assert host_name_from_file("10.0.0.1_8466.xplane.pb") == "10.0.0.1_8466"
    assert host_name_from_file("h.xplane.pb.gz") == "h"
    assert host_name_from_file(".xplane.pb") is None
    assert host_name_from_file("h.trace.json.gz") is None
    assert host_name_from_file("h.xplane.pb.tmp") is None


# -- logdir pointing at a session or a plugins/profile directory --------------------------------------


def test_logdir_is_session_dir(local_logdir: Path, memory_logdir: str) -> None:
    build_memory(memory_logdir, LAYOUT)
    for url in (
        str(local_logdir / "train/plugins/profile/2024_02_01_00_00_00"),
        f"{memory_logdir}/train/plugins/profile/2024_02_01_00_00_00",
    ):
        logdir = Logdir(url)
        runs = logdir.runs()
        assert [(run.name, run.host_names) for run in runs] == [("2024_02_01_00_00_00", ["worker_0", "worker_1"])]
        assert logdir.run("2024_02_01_00_00_00").host_names == ["worker_0", "worker_1"]
        with pytest.raises(RunNotFoundError):
            logdir.run("train/2024_02_01_00_00_00")


def test_logdir_is_profile_dir(local_logdir: Path, memory_logdir: str) -> None:
    build_memory(memory_logdir, LAYOUT)
    for url in (str(local_logdir / "train/plugins/profile"), f"{memory_logdir}/train/plugins/profile/"):
        logdir = Logdir(url)
        assert [run.name for run in logdir.runs()] == ["2024_02_01_00_00_00", "custom_session"]
        assert logdir.run("custom_session").host_names == ["h"]
        with pytest.raises(RunNotFoundError):
            logdir.run("train/custom_session")


# -- lookups and traversal ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_run_lookup_and_host_url(kind: str, local_logdir: Path, memory_logdir: str) -> None:
    build_memory(memory_logdir, LAYOUT)
    logdir = Logdir(memory_logdir if kind == "memory" else local_logdir)
    listed = {run.name: run for run in logdir.runs()}
    for name in EXPECTED_ORDER:
        assert logdir.run(name) == listed[name]
    assert logdir.run("train/custom_session/").name == "train/custom_session"

    run = logdir.run("train/2024_02_01_00_00_00")
    assert logdir.host_url(run, "worker_1") == run.hosts[1].url
    assert logdir.host_url("train/2024_02_01_00_00_00", run.hosts[0]) == run.hosts[0].url
    assert logdir.host_url(run, "worker_1").endswith("/train/plugins/profile/2024_02_01_00_00_00/worker_1.xplane.pb")

    with pytest.raises(HostNotFoundError) as host_error:
        logdir.host_url(run, "worker_9")
    assert isinstance(host_error.value, ProfileNotFoundError) and isinstance(host_error.value, KeyError)
    for unknown in ("nope", "train/nope", "checkpoints/ckpt-1", "a/2023_12_31_23_59_59"):
        with pytest.raises(RunNotFoundError) as run_error:
            logdir.run(unknown)
        assert isinstance(run_error.value, ProfileNotFoundError)
        assert isinstance(run_error.value, KeyError)
        assert isinstance(run_error.value, XprofError)


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_traversal_names_rejected(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A profile outside the logdir that a traversal would reach.
    build_local(tmp_path / "outside/plugins/profile/s", {"h.xplane.pb": b"secret"})
    build_local(tmp_path / "logdir", LAYOUT)
    logdir = Logdir(tmp_path / "logdir")
    touched: list[str] = []
    real_isdir = logdir.fs.isdir

    def spying_isdir(path: str) -> bool:
        touched.append(path)
        return bool(real_isdir(path))

    monkeypatch.setattr(logdir.fs, "isdir", spying_isdir)
    with pytest.raises(RunNotFoundError):
        logdir.run(name)
    assert touched == []  # rejected before any path was built


def test_traversal_via_session_name_stays_inside(tmp_path: Path) -> None:
    build_local(tmp_path / "outside/plugins/profile/s", {"h.xplane.pb": b"secret"})
    build_local(tmp_path / "logdir", LAYOUT)
    logdir = Logdir(tmp_path / "logdir/plugins/profile")
    for name in ("../../../outside/plugins/profile/s", "..", "../profile/2024_01_01_00_00_00"):
        with pytest.raises(RunNotFoundError):
            logdir.run(name)


# -- unreadable entries, read-only logdirs --------------------------------------------------------------


def test_unreadable_directories_reported(
    local_logdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    locked_session = local_logdir / "train/plugins/profile/2024_02_01_00_00_00"
    locked_subrun = local_logdir / "a"
    logdir = Logdir(local_logdir)
    locked = (locked_session, locked_subrun)
    for path in locked:
        os.chmod(path, 0)
    try:
        if not all(blocks_reads(path) for path in locked):
            # Running as root: chmod does not block reads, so make the filesystem refuse instead.
            real_ls = logdir.fs.ls
            blocked = {str(path) for path in locked}

            def refusing_ls(path: str, detail: bool = True, **kwargs: Any) -> Any:
                if str(path).rstrip("/") in blocked:
                    raise PermissionError(13, "Permission denied", str(path))
                return real_ls(path, detail=detail, **kwargs)

            monkeypatch.setattr(logdir.fs, "ls", refusing_ls)
        with caplog.at_level(logging.WARNING, logger="xprof_core.storage.logdir"):
            runs = logdir.runs()
    finally:
        for path in locked:
            os.chmod(path, 0o755)

    names = [run.name for run in runs]
    assert names == [
        "2024_03_05_10_00_00",
        "train/2024_02_01_00_00_00",
        "2024_01_01_00_00_00",
        "train/custom_session",
    ]
    by_name = {run.name: run for run in runs}
    broken = by_name["train/2024_02_01_00_00_00"]
    assert broken.hosts == []
    assert len(broken.problems) == 1 and "Permission denied" in broken.problems[0]
    assert str(locked_session) in broken.problems[0]
    assert all(run.problems == [] for run in runs if run is not broken)
    assert len(logdir.problems) == 1 and str(locked_subrun) in logdir.problems[0]
    logged = [r.getMessage() for r in caplog.records if r.name == "xprof_core.storage.logdir"]
    assert broken.problems[0] in logged and logdir.problems[0] in logged


def test_unreadable_directories_reported_memory(memory_logdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    build_memory(memory_logdir, LAYOUT)
    logdir = Logdir(memory_logdir)
    real_ls = logdir.fs.ls
    blocked_session = f"{logdir.root}/plugins/profile/2024_01_01_00_00_00"

    def refusing_ls(path: str, detail: bool = True, **kwargs: Any) -> Any:
        if path == blocked_session:
            raise PermissionError(13, "Permission denied", path)
        if path == f"{logdir.root}/train":
            raise RuntimeError("backend exploded")  # non-OSError failures are tolerated too
        return real_ls(path, detail=detail, **kwargs)

    monkeypatch.setattr(logdir.fs, "ls", refusing_ls)
    runs = logdir.runs()
    assert [run.name for run in runs] == [
        "2024_03_05_10_00_00",
        "2024_01_01_00_00_00",
        "a/b/2023_12_31_23_59_59",
    ]
    assert runs[1].hosts == [] and "Permission denied" in runs[1].problems[0]
    assert runs[1].problems[0].startswith("memory://")
    assert len(logdir.problems) == 1 and "backend exploded" in logdir.problems[0]


def test_unreadable_host_files_reported(local_logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = local_logdir / "plugins/profile/2024_01_01_00_00_00"
    (session / "gone.xplane.pb").symlink_to(session / "does-not-exist")
    (session / "linked.xplane.pb").symlink_to(session.parent / "2024_03_05_10_00_00/host_c.xplane.pb")
    (session / "dir.xplane.pb").mkdir()
    locked = session / "host_a.xplane.pb"
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):  # root: simulate the refusal
            real_access = os.access
            monkeypatch.setattr(
                os, "access", lambda path, mode, **kw: path != str(locked) and real_access(path, mode, **kw)
            )
        run = Logdir(local_logdir).run("2024_01_01_00_00_00")
    finally:
        os.chmod(locked, 0o644)
    assert run.host_names == ["host_b", "linked"]
    assert run.host("linked").size_bytes == 5  # the size of the link's target
    problems = sorted(run.problems)
    assert len(problems) == 3
    assert "dir.xplane.pb: not a regular file" in problems[0]
    assert "gone.xplane.pb: broken link" in problems[1]
    assert "host_a.xplane.pb: not readable" in problems[2]


def test_symlink_loop_terminates(local_logdir: Path) -> None:
    (local_logdir / "a/b/loop").symlink_to(local_logdir / "a", target_is_directory=True)
    (local_logdir / "linked_train").symlink_to(local_logdir / "train", target_is_directory=True)
    names = [run.name for run in Logdir(local_logdir).runs()]
    assert names == EXPECTED_ORDER  # the loop is cut; the linked copy of train is the same directory


def test_read_only_logdir(local_logdir: Path) -> None:
    before = snapshot(local_logdir)
    set_mode_recursive(local_logdir, 0o555, 0o444)
    try:
        logdir = Logdir(local_logdir)
        runs = logdir.runs()
        assert [run.name for run in runs] == EXPECTED_ORDER
        assert all(run.problems == [] for run in runs) and logdir.problems == []
        run = logdir.run("2024_01_01_00_00_00")
        assert bytes(open_host_bytes(run.host("host_a").url)) == PAYLOAD_A
        assert open_host_bytes(run.host("host_b").url) == PAYLOAD_GZ
        after = snapshot(local_logdir)
    finally:
        set_mode_recursive(local_logdir, 0o755, 0o644)
    assert after == before  # nothing written, created or touched


def test_memory_reading_never_writes(memory_logdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    build_memory(memory_logdir, LAYOUT)
    logdir = Logdir(memory_logdir)
    fs = logdir.fs

    def forbidden(name: str) -> Callable[..., Any]:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"logdir called fs.{name}{args}")

        return fail

    for name in (
        "mkdir",
        "makedirs",
        "pipe_file",
        "pipe",
        "touch",
        "rm",
        "rm_file",
        "rmdir",
        "mv",
        "cp_file",
    ):
        monkeypatch.setattr(fs, name, forbidden(name))
    real_open = fs._open

    def read_only_open(path: str, mode: str = "rb", **kwargs: Any) -> Any:
        assert mode == "rb", f"opened {path} with mode {mode}"
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(fs, "_open", read_only_open)
    store_before = dict(fs.store)
    runs = logdir.runs()
    assert [run.name for run in runs] == EXPECTED_ORDER
    for run in runs:
        for host in run.hosts:
            assert len(bytes(logdir.open_host_bytes(host))) >= 0
    assert fs.store == store_before


# -- filesystems and extras --------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "extra"), [("gs://bucket/logs", "gcs"), ("s3://bucket/logs", "s3")])
def test_missing_extra_names_the_install(url: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend(*args: Any, **kwargs: Any) -> Any:
        raise ImportError("backend not installed")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_backend)
    with pytest.raises(MissingExtraError, match=rf"pip install xprof-core\[{extra}\]") as error:
        Logdir(url)
    assert isinstance(error.value, ImportError) and isinstance(error.value, XprofError)


@pytest.mark.parametrize(("url", "module", "extra"), [("gs://b/l", "gcsfs", "gcs"), ("s3://b/l", "s3fs", "s3")])
def test_missing_extra_for_real(url: str, module: str, extra: str) -> None:
    # In a child process where the filesystem's module cannot be imported (the test extra installs
    # both, so this process has them): fsspec's own ImportError becomes the named error.
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from xprof_core.storage.logdir import Logdir, MissingExtraError\n"
        f"try:\n    Logdir({url!r})\nexcept MissingExtraError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"pip install xprof-core[{extra}]" in proc.stdout, proc.stdout


def test_bad_urls() -> None:
    with pytest.raises(LogdirError):
        Logdir("nosuchprotocol-xyz://bucket/logs")
    with pytest.raises(LogdirError):
        Logdir("")


def test_host_is_frozen() -> None:
    host = Host(name="h", url="/x/h.xplane.pb", size_bytes=3)
    with pytest.raises(AttributeError):
        host.name = "other"  # type: ignore[misc]
    assert not host.compressed


# -- the real XProf demo logdir ----------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DEMO.is_dir(), reason=f"real XProf demo logdir not present at {REAL_DEMO}")
def test_real_xprof_demo() -> None:
    logdir = Logdir(REAL_DEMO)
    runs = logdir.runs()
    assert [run.name for run in runs] == ["GPU-multi-worker"]
    assert logdir.problems == []
    run = logdir.run("GPU-multi-worker")
    assert run == runs[0] and run.problems == []
    assert run.host_names == ["34.83.195.179_6003", "34.83.195.180_6003"]
    for host in run.hosts:
        assert host.size_bytes == os.stat(host.url).st_size > 0
        assert stat.S_ISREG(os.stat(host.url).st_mode)
    url = logdir.host_url("GPU-multi-worker", "34.83.195.180_6003")
    expected = os.path.join(os.path.abspath(REAL_DEMO), "plugins/profile/GPU-multi-worker/34.83.195.180_6003.xplane.pb")
    assert url == expected
    data = open_host_bytes(url)
    assert isinstance(data, mmap.mmap)
    try:
        assert len(data) == run.hosts[1].size_bytes
        assert data[0] == 0x0A  # XSpace field 1 (planes), length-delimited
    finally:
        data.close()
