#!/usr/bin/env bash
# Build the container image with podman, from a base image made here: no registry needed.
#
#   scripts/build_image.sh [TAG]          (default TAG: localhost/xprof-core:ci; run as root)
#
# 1. The base: debootstrap a minimal Debian (bookworm) with python3 and its venv module,
#    trusting the CA certificates this machine trusts, and `podman import` it as
#    localhost/xprof-base:bookworm. Skipped when that image already exists.
# 2. `podman build --isolation=chroot` of deploy/Dockerfile with BASE set to it (layers are
#    cached, so a second build of the same tree is quick).
#
# Needs podman and debootstrap (Debian packages). The Debian mirror is the one apt uses
# here. Users build the same Dockerfile with Docker and the default BASE (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
tag=${1:-localhost/xprof-core:ci}
base=${XPROF_BASE_IMAGE:-localhost/xprof-base:bookworm}
suite=bookworm

start=$(date +%s)
if ! podman image exists "$base"; then
  # The mirror apt is configured with (deb822 sources or a classic sources.list).
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
  if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
  rootfs=$(mktemp -d /var/tmp/xprof-base.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$rootfs" "$mirror" \
    > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  # Trust what this machine trusts (a TLS-inspecting proxy's CA, if any), so pip and apt
  # inside the build reach the registries as they do here.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc "$rootfs"/usr/share/man
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  echo "base image $base: debootstrap + import in $(($(date +%s) - start)) s"
else
  echo "base image $base: already built"
fi

start=$(date +%s)
podman build --isolation=chroot --build-arg BASE="$base" -f deploy/Dockerfile -t "$tag" . > build/image-build.log 2>&1 \
  || { tail -n 40 build/image-build.log >&2; exit 1; }
echo "image $tag: podman build in $(($(date +%s) - start)) s ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
