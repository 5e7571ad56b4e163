#!/bin/sh
# Builds the Garage object store once and caches its binary, for the S3
# target's tests (crates/archive/tests/s3_garage.rs). Idempotent: does
# nothing when the cached binary exists. Called by `make test-deps`.
#
#   LIFEBOAT_GARAGE_DIR   cache directory (default /var/tmp/lifeboat-garage)
#   GARAGE_VERSION        crates.io version to build (default 2.5.0)
#
# Only the LMDB metadata engine with bundled C libraries is built: no
# metrics, no K2V, no SQLite, no Consul/Kubernetes discovery.
set -eu
dir=${LIFEBOAT_GARAGE_DIR:-/var/tmp/lifeboat-garage}
version=${GARAGE_VERSION:-2.5.0}
bin=$dir/bin/garage
if [ -x "$bin" ]; then
	echo "garage: cached at $bin ($("$bin" --version 2>/dev/null | head -n1))"
	exit 0
fi
mkdir -p "$dir"
echo "garage: building $version into $dir (log: $dir/build.log); this takes a while"
start=$(date +%s)
if ! CARGO_TARGET_DIR="$dir/build" cargo install garage --version "$version" --locked \
	--no-default-features --features bundled-libs,lmdb \
	--root "$dir" >"$dir/build.log" 2>&1; then
	tail -n 30 "$dir/build.log" >&2
	echo "garage: build failed; see $dir/build.log" >&2
	exit 1
fi
rm -rf "$dir/build"
echo "garage: built in $(( $(date +%s) - start )) s: $bin"
