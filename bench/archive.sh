#!/usr/bin/env bash
# bench/archive.sh — backup and restore throughput and size: lifeboat against
# the standard tools on the same tree in one run, warm cache. Each peer is
# run alternately with lifeboat (A B A B ..., REPEAT pairs), and the ratio
# reported is the median of the per-pair ratios with its spread (min-max):
# this machine is noisy, and a best-of-N per tool compares different moments.
# Run as root from the repository:
#   TREE=/usr PEERS="zstd limit gzip restic borg" RESTORE_DIR=/dev/shm bash bench/archive.sh
# TREE is backed up as one filesystem unit; PEERS chooses the comparisons.
# OLD_LB=/path/to/an/older/lifeboat adds that binary as a peer (backup and
# restore), to measure a change.
# RESTORE_DIR=/dev/shm measures the tools rather than the disk (file creation
# on a busy ext4 mounted with `discard` varies tenfold from run to run).
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=${TREE:-/usr}
PEERS=${PEERS:-"zstd limit gzip restic borg"}
LEVEL=${LEVEL:-3}
REPEAT=${REPEAT:-5}
OLD_LB=${OLD_LB:-}
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
prep_lbrestore() { rm -rf "$R/r1" "$R/r2" "$R/r3"; mkdir -p "$R/r1"; sync; }
run_lbrestore() { "$LB" --config "$W/lb.toml" -q restore --from "file://$W/lbt" --to "$R/r1" > /dev/null; }
prep_tarx() { rm -rf "$R/r1" "$R/r2" "$R/r3"; mkdir -p "$R/r2"; sync; }
run_tarx() { zstd -dc "$W/t.tar.zst" | tar -x -C "$R/r2"; }

# One timed run of tool $1 (after its untimed prep).
timed() { local s; "prep_$1"; s=$(now); "run_$1"; echo "$(now) - $s" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# pair A B: REPEAT alternating runs of A and B. Sets PA and PB (median
# seconds) and PR, PLO, PHI (median, min and max of the per-pair B/A ratios:
# how many times faster A is).
pair() {
  local as=() bs=() rs=() ta tb
  for _ in $(seq "$REPEAT"); do
    ta=$(timed "$1"); tb=$(timed "$2")
    as+=("$ta"); bs+=("$tb"); rs+=("$(echo "$tb / $ta" | bc -l)")
    LB_TIMES+=("$ta")
  done
  PA=$(median "${as[@]}"); PB=$(median "${bs[@]}"); PR=$(median "${rs[@]}")
  PLO=$(printf '%s\n' "${rs[@]}" | sort -g | head -1); PHI=$(printf '%s\n' "${rs[@]}" | sort -g | tail -1)
}
row() { printf '%-38s %8.1f %8.1f %7.3f\n' "$1" "$2" "$(echo "$BYTES/1000000/$2" | bc -l)" "$(echo "$3/$BYTES" | bc -l)"; }
ratio() { printf '  lifeboat / %-28s %5.2fx  (median of %d pairs; %.2f-%.2f)\n' "$1" "$PR" "$REPEAT" "$PLO" "$PHI"; }
prep_oldlb() { rm -rf "$W/old"; mkdir -p "$W/old"; }
run_oldlb() { "$OLD_LB" --config "$W/lb.toml" -q backup --target "file://$W/old" --volume-size 100G --root / "${TREE#/}" > /dev/null; }
out_oldlb() { du -sb "$W/old" | cut -f1; }
prep_oldrestore() { rm -rf "$R/r1" "$R/r2" "$R/r3"; mkdir -p "$R/r3"; sync; }
run_oldrestore() { "$OLD_LB" --config "$W/lb.toml" -q restore --from "file://$W/old" --to "$R/r3" > /dev/null; }

cat > "$W/lb.toml" <<CONF
[paths]
work_dir = "$W/work"
output_dir = "$W/out"
layout_file = "$W/layout.toml"
[backup]
level = $LEVEL
CONF
echo "tree: $TREE, $(echo "$BYTES/1000000" | bc) MB, $(find "$TREE" -xdev | wc -l) entries; $(nproc) cores; zstd level $LEVEL; $REPEAT alternating pairs per peer"
printf '%-38s %8s %8s %7s\n' backup "median s" "MB/s" ratio
LB_TIMES=()
ROWS=()
RATIOS=()
[ -n "$OLD_LB" ] && PEERS="$PEERS old"
for p in $PEERS; do
  case $p in
    zstd) pair lifeboat zstd; ROWS+=("$(row "tar | zstd -T0 -$LEVEL" "$PB" "$(out_zstd)")"); RATIOS+=("$(ratio "tar|zstd -T0 -$LEVEL")") ;;
    limit) pair lifeboat limit; ROWS+=("$(row "limit: zstd -T0 -$LEVEL of a tar file" "$PB" "$(out_limit)")"); RATIOS+=("$(ratio "zstd of a ready tar")"); rm -f "$W/t.tar" "$W/l.zst" ;;
    gzip) pair lifeboat gzip; ROWS+=("$(row "tar -czf (mkcdrec, ReaR)" "$PB" "$(out_gzip)")"); RATIOS+=("$(ratio "tar -czf")"); rm -f "$W/t.tar.gz" ;;
    restic) pair lifeboat restic; ROWS+=("$(row "restic $(restic version | awk '{print $2}')" "$PB" "$(out_restic)")"); RATIOS+=("$(ratio restic)"); rm -rf "$W/restic" ;;
    borg) pair lifeboat borg; ROWS+=("$(row "borg $(borg --version | awk '{print $2}') zstd,$LEVEL" "$PB" "$(out_borg)")"); RATIOS+=("$(ratio borg)"); rm -rf "$W/borg" ;;
    old) pair lifeboat oldlb; ROWS+=("$(row "older lifeboat ($OLD_LB)" "$PB" "$(out_oldlb)")"); RATIOS+=("$(ratio "the older lifeboat")") ;;
  esac
done
row "lifeboat backup (hashing included)" "$(median "${LB_TIMES[@]}")" "$(out_lifeboat)"
printf '%s\n' "${ROWS[@]}" "${RATIOS[@]}"
echo
echo "restore (into $R)"
printf '%-38s %8s %8s\n' restore "median s" "MB/s"
restore_row() { printf '%-38s %8.1f %8.1f\n' "$1" "$2" "$(echo "$BYTES/1000000/$2" | bc -l)"; }
LB_TIMES=()
if [ -f "$W/t.tar.zst" ]; then
  pair lbrestore tarx
  restore_row "lifeboat restore (hashes checked)" "$PA"; restore_row "zstd -d | tar -x" "$PB"; ratio "zstd -d | tar -x"
fi
if [ -n "$OLD_LB" ]; then
  pair lbrestore oldrestore
  restore_row "lifeboat restore (hashes checked)" "$PA"; restore_row "older lifeboat restore" "$PB"; ratio "the older lifeboat"
fi
