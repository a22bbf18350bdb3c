"""Run processes from the container image as built, without a container runtime.

``podman run`` cannot start containers in every sandbox (the runtime must set rlimits), but
``podman image mount`` gives the image's root filesystem. :func:`mounted_image` mounts the
image named by ``$XPROF_TEST_IMAGE`` (``scripts/build_image.sh`` builds one) and reads its
config (entrypoint, environment, user, working directory); :meth:`ImageRoot.argv` turns a
container's command into a command line that runs it the way a runtime would, as far as the
tests need:

* a private mount namespace (``unshare --mount``) holding an overlay of the image's root with
  a scratch upper layer, remounted read-only as the manifests ask (``readOnlyRootFilesystem``);
* ``/proc``, ``/dev``, an empty tmpfs on ``/tmp`` (the manifests' emptyDir), the volumes the
  caller names, and the network namespace's ``/etc/hosts`` and ``/etc/host.conf`` (cluster DNS);
* ``chroot`` into it as the image's user, with the image's environment plus the container's
  own, in its working directory; every step execs, so the pid is the server's and signals
  reach it.

The mounts vanish with the process (its mount namespace dies with it). Needs root, podman,
and util-linux's unshare; the calling test is skipped, saying why, without them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IMAGE_VAR = "XPROF_TEST_IMAGE"

_SETUP = r"""
set -eu
lower=$1 scratch=$2 ro=$3
shift 3
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
root=$scratch/root
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
for f in hosts host.conf; do
  touch "$root/etc/$f"
  mount --bind "/etc/$f" "$root/etc/$f"
done
while [ "$1" != "--" ]; do  # volumes: HOST_PATH CONTAINER_PATH pairs, read-only
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  mount -o remount,bind,ro "$root$2"
  shift 2
done
shift
if [ "$ro" = 1 ]; then mount -o remount,bind,ro "$root"; fi
exec chroot "$@"
"""


@dataclass(frozen=True)
class ImageRoot:
    """A mounted image: its reference, root directory and config (entrypoint, env, user, workdir)."""

    image: str
    root: Path
    config: Mapping[str, Any]

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("Entrypoint") or [])

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "0:0")

    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [])

    def argv(
        self,
        command: Sequence[str],
        scratch: Path,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[str, str] | None = None,
        read_only_root: bool = True,
    ) -> list[str]:
        """The command line that runs ``command`` (a container's command and args) from the image.

        ``env`` is added to the image's environment, ``volumes`` maps host paths to paths in
        the container (mounted read-only); ``scratch`` is an empty directory for the overlay.
        """
        scratch.mkdir(parents=True, exist_ok=True)
        variables = {**self.env(), **(env or {})}
        pairs = [p for host, inside in (volumes or {}).items() for p in (host, inside)]
        chroot = [
            f"--userspec={self.user}",
            str(scratch / "root"),
            "/usr/bin/env",
            "-i",
            "-C",
            str(self.config.get("WorkingDir") or "/"),
            *(f"{k}={v}" for k, v in variables.items()),
            *command,
        ]
        setup = ["sh", "-c", _SETUP, "image-root", str(self.root), str(scratch), "1" if read_only_root else "0"]
        return ["unshare", "--mount", "--propagation", "private", *setup, *pairs, "--", *chroot]

    def describe(self, argv: Sequence[str]) -> str:
        return shlex.join(argv)


def _skip_unless_possible() -> str:
    image = os.environ.get(IMAGE_VAR, "")
    if not image:
        pytest.skip(f"no image to run: set {IMAGE_VAR} to an image podman has (scripts/build_image.sh builds one)")
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("running the image's root filesystem needs root (mount, chroot)")
    for tool in ("podman", "unshare", "chroot"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed; it runs the image's root filesystem")
    return image


@contextmanager
def mounted_image() -> Iterator[ImageRoot]:
    """The image named by ``$XPROF_TEST_IMAGE``, mounted for the ``with`` block; skips when unavailable."""
    image = _skip_unless_possible()
    inspected = subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True)
    if inspected.returncode != 0:
        pytest.fail(f"{IMAGE_VAR}={image!r}, but podman does not have it: {inspected.stderr.strip()}")
    config = json.loads(inspected.stdout)[0].get("Config") or {}
    mount = subprocess.run(["podman", "image", "mount", image], capture_output=True, text=True, check=True)
    try:
        yield ImageRoot(image, Path(mount.stdout.strip()), config)
    finally:
        subprocess.run(["podman", "image", "unmount", image], capture_output=True)
