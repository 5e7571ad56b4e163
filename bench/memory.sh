#!/usr/bin/env bash
# bench/memory.sh — peak RSS (and wall time) of lifeboat backup (full, then
# incremental with 1% of the files changed), restore of the chain, verify
# and compare on a synthetic tree of DIRS x FILES small files (default
# 1000 x 1000: one million, 0-4 KiB each, made by bench/mktree.py), with
# GNU tar doing the same jobs for reference. Everything is on a tmpfs
# (WORK, default /dev/shm: about 10 GiB at the default size), so the disk
# is not measured. It is not a timing benchmark: one run, and the times are
# only there to see nothing became pathological. Goal (issue 17): every
# lifeboat figure at most 256 MiB. Run as root from the repository:
#   bash bench/memory.sh
# LB=/path/to/lifeboat measures that binary; otherwise the release build
# (CARGO_TARGET_DIR is honoured).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (restore of owners)" >&2; exit 1; }
DIRS=${DIRS:-1000}
FILES=${FILES:-1000}
WORK=${WORK:-/dev/shm}
GOAL_MIB=${GOAL_MIB:-256}
if [ -z "${LB:-}" ]; then
  cargo build --release --locked -q -p lifeboat
  LB=${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat
fi
W=$(mktemp -d "$WORK/bench-memory.XXXXXX")
trap 'rm -rf "$W"' EXIT
T=$W/tree
printf '[paths]\nwork_dir = "%s/work"\noutput_dir = "%s/out"\nkey_dir = "%s/keys"\n' "$W" "$W" "$W" > "$W/lb.toml"
lb=("$LB" --config "$W/lb.toml" -q)

ROWS=()
OVER=()
# m LABEL CMD...: run CMD under GNU time; record its peak RSS (MiB) and wall time.
# A non-zero exit is shown (tar --compare exits 1 when it finds differences).
m() {
  local label=$1 rc=0
  shift
  /usr/bin/time -f '%M %e' -o "$W/time" "$@" > "$W/out" 2> "$W/err" || rc=$?
  read -r kib secs < <(tail -n 1 "$W/time")
  ROWS+=("$(printf '%-44s %8.1f %9.1f %4s' "$label" "$(echo "$kib / 1024" | bc -l)" "$secs" "$rc")")
  printf '%s\n' "${ROWS[-1]}"
  case $label in lifeboat*) [ "$kib" -le $((GOAL_MIB * 1024)) ] || OVER+=("$label") ;; esac
  if [ "$rc" != 0 ] && [ "${ALLOW_FAIL:-0}" = 0 ]; then
    echo "--- $label failed ($rc):" >&2
    tail -n 20 "$W/err" >&2
    exit 1
  fi
}

echo "making $((DIRS * FILES)) files in $T..."
s=$(date +%s.%N)
python3 bench/mktree.py "$T" "$DIRS" "$FILES" > /dev/null
echo "  $(echo "$(date +%s.%N) - $s" | bc | cut -c1-5) s, $(du -s --apparent-size -BM "$T" | cut -f1) apparent"
sleep 1.1 # past the racy window of the first backup's start: unchanged files are judged by metadata

printf '%-44s %8s %9s %4s\n' "command" "peak MiB" "wall s" "exit"
mkdir -p "$W/lbt"
m "lifeboat backup --full" "${lb[@]}" backup --full --target "file://$W/lbt" --volume-size 100G --root "$T" .
FULL=$(find "$W/lbt" -mindepth 2 -maxdepth 2 -type d | sort | head -n 1)
m "tar -c --listed-incremental (level 0)" tar --listed-incremental="$W/snar" -cf "$W/full.tar" -C "$T" .
cp "$W/snar" "$W/snar0"

python3 bench/mktree.py --change "$T" 100 > "$W/changed"
echo "changed $(cat "$W/changed") files (1%)"
sleep 1.1
m "lifeboat backup --incremental (1% changed)" "${lb[@]}" backup --incremental --target "file://$W/lbt" --volume-size 100G --root "$T" .
m "tar -c --listed-incremental (level 1)" tar --listed-incremental="$W/snar" -cf "$W/incr.tar" -C "$T" .

m "lifeboat verify (the full backup)" "${lb[@]}" verify --from "file://$FULL"
m "lifeboat verify (the increment)" "${lb[@]}" verify --from "file://$W/lbt"
m "tar -t (the level-0 archive)" tar -tf "$W/full.tar"

m "lifeboat compare (the increment, tree)" "${lb[@]}" compare --from "file://$W/lbt" --root "$T"
ALLOW_FAIL=1 m "tar --compare (level 0 against the tree)" tar -df "$W/full.tar" -C "$T"

m "lifeboat restore (the chain)" "${lb[@]}" restore --from "file://$W/lbt" --to "$W/r1"
diff -r "$T" "$W/r1" > /dev/null || { echo "the restored tree differs from the source" >&2; exit 1; }
rm -rf "$W/r1"
mkdir -p "$W/r2"
m "tar -x (level 0, then level 1)" sh -c "tar --listed-incremental=/dev/null -xf '$W/full.tar' -C '$W/r2' && tar --listed-incremental=/dev/null -xf '$W/incr.tar' -C '$W/r2'"
rm -rf "$W/r2"

echo
echo "lifeboat $("$LB" --version 2>/dev/null | head -n 1), $((DIRS * FILES)) files, manifests:" \
  "$(find "$W/lbt" -name manifest.jsonl -printf '%s ' | sort -n) bytes"
echo "lifeboat commands over ${GOAL_MIB} MiB: ${#OVER[@]}${OVER:+ (${OVER[*]})}"
