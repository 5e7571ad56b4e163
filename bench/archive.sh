#!/usr/bin/env bash
# bench/archive.sh — backup throughput and size: lifeboat against the standard
# tools on the same tree in one run, warm cache. Run as root from the repository:
#   TREE=/usr PEERS="gzip zstd limit restic borg" bash bench/archive.sh
# TREE is backed up as one filesystem unit; PEERS chooses the comparisons.
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=${TREE:-/usr}
PEERS=${PEERS:-"zstd limit gzip restic borg"}
LEVEL=${LEVEL:-3}
cargo build --release --locked -q
LB=$PWD/target/release/lifeboat
W=$(mktemp -d /var/tmp/bench-archive.XXXXXX)
trap 'rm -rf "$W"' EXIT
for p in $PEERS; do
  case $p in restic|borg) command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${p/borg/borgbackup} >/dev/null ;; esac
done
echo "warming the cache ($TREE)..."
tar -cf - --one-file-system -C / "${TREE#/}" | wc -c > "$W/tarsize"
BYTES=$(du -sb --apparent-size -x "$TREE" | cut -f1)
now() { date +%s.%N; }
row() { printf '%-34s %9.1f %9.1f %8.3f\n' "$1" "$2" "$(echo "$BYTES/1000000/$2" | bc -l)" "$(echo "$3/$BYTES" | bc -l)"; }
echo "tree: $TREE, $(echo "$BYTES/1000000" | bc) MB, $(find "$TREE" -xdev | wc -l) entries; $(nproc) cores; zstd level $LEVEL"
printf '%-34s %9s %9s %8s\n' tool seconds "MB/s" ratio
cat > "$W/lb.toml" <<CONF
[paths]
work_dir = "$W/work"
output_dir = "$W/out"
layout_file = "$W/layout.toml"
[backup]
level = $LEVEL
CONF
mkdir -p "$W/lbt"
s=$(now); "$LB" --config "$W/lb.toml" -q backup --target "file://$W/lbt" --volume-size 100G --root / "${TREE#/}" > /dev/null
lt=$(echo "$(now) - $s" | bc); ls=$(du -sb "$W/lbt" | cut -f1); row "lifeboat backup (hashing included)" "$lt" "$ls"
for p in $PEERS; do
  case $p in
    zstd) s=$(now); tar -cf - --one-file-system -C / "${TREE#/}" | zstd -q -T0 -$LEVEL > "$W/t.tar.zst"; t=$(echo "$(now) - $s" | bc)
          row "tar | zstd -T0 -$LEVEL" "$t" "$(stat -c %s "$W/t.tar.zst")"; zt=$t ;;
    limit) tar -cf "$W/t.tar" --one-file-system -C / "${TREE#/}"; s=$(now); zstd -q -T0 -$LEVEL -c "$W/t.tar" > "$W/l.zst"; t=$(echo "$(now) - $s" | bc)
          row "limit: zstd -T0 -$LEVEL of a tar file" "$t" "$(stat -c %s "$W/l.zst")"; rm -f "$W/t.tar" "$W/l.zst" ;;
    gzip) s=$(now); tar -czf "$W/t.tar.gz" --one-file-system -C / "${TREE#/}"; t=$(echo "$(now) - $s" | bc)
          row "tar -czf (mkcdrec, ReaR)" "$t" "$(stat -c %s "$W/t.tar.gz")"; rm -f "$W/t.tar.gz" ;;
    restic) export RESTIC_PASSWORD=bench; restic init -q -r "$W/restic" >/dev/null; s=$(now); restic -q -r "$W/restic" backup --one-file-system "$TREE" >/dev/null
          t=$(echo "$(now) - $s" | bc); row "restic $(restic version | awk '{print $2}')" "$t" "$(du -sb "$W/restic" | cut -f1)"; rm -rf "$W/restic" ;;
    borg) export BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes; borg init -e none "$W/borg" >/dev/null 2>&1; s=$(now)
          borg create --one-file-system --compression zstd,$LEVEL "$W/borg::b" "$TREE" >/dev/null 2>&1; t=$(echo "$(now) - $s" | bc)
          row "borg $(borg --version | awk '{print $2}') zstd,$LEVEL" "$t" "$(du -sb "$W/borg" | cut -f1)"; rm -rf "$W/borg" ;;
  esac
done
[ -n "${zt:-}" ] && printf 'lifeboat backup / tar|zstd throughput: %.2fx\n' "$(echo "$zt/$lt" | bc -l)"
echo
# RESTORE_DIR=/dev/shm measures the tools rather than the disk (file
# creation on a busy ext4 with `discard` varies by 10x from run to run).
R=$(mktemp -d "${RESTORE_DIR:-$W}/bench-restore.XXXXXX")
trap 'rm -rf "$W" "$R"' EXIT
echo "restore (into $R):"
printf '%-34s %9s %9s\n' tool seconds "MB/s"
mkdir -p "$R/r1" "$R/r2"; sync
s=$(now); "$LB" --config "$W/lb.toml" -q restore --from "file://$W/lbt" --to "$R/r1" >/dev/null; rt=$(echo "$(now) - $s" | bc)
printf '%-34s %9.1f %9.1f\n' "lifeboat restore (hashes checked)" "$rt" "$(echo "$BYTES/1000000/$rt" | bc -l)"
if [ -f "$W/t.tar.zst" ]; then
  rm -rf "$R/r1"; sync
  s=$(now); zstd -dc "$W/t.tar.zst" | tar -x -C "$R/r2"; zr=$(echo "$(now) - $s" | bc)
  printf '%-34s %9.1f %9.1f\n' "zstd -d | tar -x" "$zr" "$(echo "$BYTES/1000000/$zr" | bc -l)"
  printf 'lifeboat restore / zstd -d|tar -x throughput: %.2fx\n' "$(echo "$zr/$rt" | bc -l)"
fi
