#!/usr/bin/env bash
# Builds the node image: the node compiled as a static binary (glibc with
# crt-static, so no libc is needed at run time) in an image FROM scratch.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: undchain-node/docker/build.sh [--profile release|dev] [--tag NAME:TAG]

Compiles undchain-node as a static binary for this machine's
<arch>-unknown-linux-gnu target (RUSTFLAGS='-C target-feature=+crt-static';
the explicit --target keeps build scripts and proc macros dynamic), checks
that it needs no dynamic loader, strips it, and builds the image
(undchain-node/docker/Dockerfile, FROM scratch) with `docker build`.

  --profile P   cargo profile (default release; CI builds `dev`, whose
                dependencies are optimised as well, to save build time)
  --tag T       image name (default undchain-node:latest, the image
                `testnet --compose` and the container e2e test run)
  -h, --help    this text

Run the image with a home mounted at /node, as the home's owner:
  docker run --user "$(id -u):$(id -g)" -v "$PWD/home:/node" undchain-node:latest
USAGE
}

profile=release
tag=undchain-node:latest
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs a value}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
target="$(uname -m)-unknown-linux-gnu"
libc_a=$(gcc -print-file-name=libc.a 2>/dev/null || echo libc.a)
if [ ! -f "$libc_a" ]; then
  echo "build.sh: no static glibc (libc.a) found: install libc6-dev" >&2
  exit 1
fi

echo "== static undchain-node ($profile, $target)"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --profile "$profile" -p undchain-node --bin undchain-node --target "$target"
dir=$profile
[ "$profile" = dev ] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$target/$dir/undchain-node"

if command -v readelf >/dev/null 2>&1; then
  if readelf -l "$bin" | grep -q 'program interpreter' || readelf -d "$bin" | grep -q NEEDED; then
    echo "build.sh: $bin is not static:" >&2
    readelf -d "$bin" | grep NEEDED >&2 || true
    exit 1
  fi
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/undchain-node"
if command -v strip >/dev/null 2>&1; then
  strip "$ctx/undchain-node"
fi
cp "$here/Dockerfile" "$ctx/Dockerfile"

echo "== image $tag"
docker build -q -t "$tag" "$ctx"
docker image ls "$tag"
