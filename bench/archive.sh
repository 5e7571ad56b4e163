#!/usr/bin/env bash
# bench/archive.sh — backup and restore throughput and size: lifeboat against
# the standard tools on the same tree in one run, warm cache, best of REPEAT
# runs each. Run as root from the repository:
#   TREE=/usr PEERS="zstd limit gzip restic borg" RESTORE_DIR=/dev/shm bash bench/archive.sh
# TREE is backed up as one filesystem unit; PEERS chooses the comparisons.
# RESTORE_DIR=/dev/shm measures the tools rather than the disk (file creation
# on a busy ext4 mounted with `discard` varies tenfold from run to run).
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=${TREE:-/usr}
PEERS=${PEERS:-"zstd limit gzip restic borg"}
LEVEL=${LEVEL:-3}
REPEAT=${REPEAT:-3}
cargo build --release --locked -q
LB=$PWD/target/release/lifeboat
W=$(mktemp -d /var/tmp/bench-archive.XXXXXX)
R=$(mktemp -d "${RESTORE_DIR:-$W}/bench-restore.XXXXXX")
trap 'rm -rf "$W" "$R"' EXIT
for p in $PEERS; do
  case $p in restic|borg) command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${p/borg/borgbackup} >/dev/null ;; esac
done
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
echo "warming the cache ($TREE)..."
tar -cf - --one-file-system -C / "${TREE#/}" | wc -c > /dev/null
BYTES=$(du -sb --apparent-size -x "$TREE" | cut -f1)
now() { date +%s.%N; }

# Each tool: prep_X (not timed) and run_X (timed); the best of REPEAT runs counts.
prep_lifeboat() { rm -rf "$W/lbt"; mkdir -p "$W/lbt"; }
run_lifeboat() { "$LB" --config "$W/lb.toml" -q backup --target "file://$W/lbt" --volume-size 100G --root / "${TREE#/}" > /dev/null; }
out_lifeboat() { du -sb "$W/lbt" | cut -f1; }
prep_zstd() { rm -f "$W/t.tar.zst"; }
run_zstd() { tar -cf - --one-file-system -C / "${TREE#/}" | zstd -q -T0 -$LEVEL > "$W/t.tar.zst"; }
out_zstd() { stat -c %s "$W/t.tar.zst"; }
prep_limit() { [ -f "$W/t.tar" ] || tar -cf "$W/t.tar" --one-file-system -C / "${TREE#/}"; rm -f "$W/l.zst"; }
run_limit() { zstd -q -T0 -$LEVEL -c "$W/t.tar" > "$W/l.zst"; }
out_limit() { stat -c %s "$W/l.zst"; }
prep_gzip() { rm -f "$W/t.tar.gz"; }
run_gzip() { tar -czf "$W/t.tar.gz" --one-file-system -C / "${TREE#/}"; }
out_gzip() { stat -c %s "$W/t.tar.gz"; }
prep_restic() { rm -rf "$W/restic"; restic init -q -r "$W/restic" > /dev/null; }
run_restic() { restic -q -r "$W/restic" backup --one-file-system "$TREE" > /dev/null; }
out_restic() { du -sb "$W/restic" | cut -f1; }
prep_borg() { rm -rf "$W/borg"; borg init -e none "$W/borg" > /dev/null 2>&1; }
run_borg() { borg create --one-file-system --compression zstd,$LEVEL "$W/borg::b" "$TREE" > /dev/null 2>&1; }
out_borg() { du -sb "$W/borg" | cut -f1; }
prep_lbrestore() { rm -rf "$R/r1"; mkdir -p "$R/r1"; sync; }
run_lbrestore() { "$LB" --config "$W/lb.toml" -q restore --from "file://$W/lbt" --to "$R/r1" > /dev/null; }
prep_tarx() { rm -rf "$R/r1" "$R/r2"; mkdir -p "$R/r2"; sync; }
run_tarx() { zstd -dc "$W/t.tar.zst" | tar -x -C "$R/r2"; }

best() {
  local b="" s t
  for _ in $(seq "$REPEAT"); do
    "prep_$1"; s=$(now); "run_$1"; t=$(echo "$(now) - $s" | bc)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
row() { printf '%-38s %8.1f %8.1f %7.3f\n' "$1" "$2" "$(echo "$BYTES/1000000/$2" | bc -l)" "$(echo "$3/$BYTES" | bc -l)"; }

cat > "$W/lb.toml" <<CONF
[paths]
work_dir = "$W/work"
output_dir = "$W/out"
layout_file = "$W/layout.toml"
[backup]
level = $LEVEL
CONF
echo "tree: $TREE, $(echo "$BYTES/1000000" | bc) MB, $(find "$TREE" -xdev | wc -l) entries; $(nproc) cores; zstd level $LEVEL; best of $REPEAT"
printf '%-38s %8s %8s %7s\n' backup seconds "MB/s" ratio
lt=$(best lifeboat); row "lifeboat backup (hashing included)" "$lt" "$(out_lifeboat)"
for p in $PEERS; do
  case $p in
    zstd) zt=$(best zstd); row "tar | zstd -T0 -$LEVEL" "$zt" "$(out_zstd)" ;;
    limit) t=$(best limit); row "limit: zstd -T0 -$LEVEL of a tar file" "$t" "$(out_limit)"; rm -f "$W/t.tar" "$W/l.zst" ;;
    gzip) t=$(best gzip); row "tar -czf (mkcdrec, ReaR)" "$t" "$(out_gzip)"; rm -f "$W/t.tar.gz" ;;
    restic) t=$(best restic); row "restic $(restic version | awk '{print $2}')" "$t" "$(out_restic)"; rm -rf "$W/restic" ;;
    borg) t=$(best borg); row "borg $(borg --version | awk '{print $2}') zstd,$LEVEL" "$t" "$(out_borg)"; rm -rf "$W/borg" ;;
  esac
done
[ -n "${zt:-}" ] && printf 'lifeboat backup / tar|zstd throughput: %.2fx\n' "$(echo "$zt/$lt" | bc -l)"
echo
echo "restore (into $R)"
printf '%-38s %8s %8s\n' restore seconds "MB/s"
rt=$(best lbrestore); printf '%-38s %8.1f %8.1f\n' "lifeboat restore (hashes checked)" "$rt" "$(echo "$BYTES/1000000/$rt" | bc -l)"
if [ -f "$W/t.tar.zst" ]; then
  zr=$(best tarx); printf '%-38s %8.1f %8.1f\n' "zstd -d | tar -x" "$zr" "$(echo "$BYTES/1000000/$zr" | bc -l)"
  printf 'lifeboat restore / zstd -d|tar -x throughput: %.2fx\n' "$(echo "$zr/$rt" | bc -l)"
fi
