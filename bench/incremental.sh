#!/usr/bin/env bash
# bench/incremental.sh — incremental backups side by side with restic on one
# tree: a full backup, a second backup of the unchanged tree, and one after
# changing 1% of the files; then the restore of the resulting chain (lifeboat)
# and of the latest snapshot (restic). The tools alternate run by run (A B A
# B ..., REPEAT rounds); each figure is the median, and each ratio the median
# of the per-round ratios with its spread (min-max): this machine is noisy.
# Peak RSS (GNU time) of lifeboat's incremental backup and chain restore is
# reported too. Run as root from the repository:
#   TREE=/usr REPEAT=3 bash bench/incremental.sh
# TREE is never written: the benchmark works on an overlay of it (its
# changes go to an upper directory under WORK), so the unchanged files keep
# their inodes and times. WORK needs room for two backups of TREE.
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=${TREE:-/usr}
REPEAT=${REPEAT:-3}
WORK=${WORK:-/var/tmp}
RESTORE_DIR=${RESTORE_DIR:-/dev/shm}
cargo build --release --locked -q
LB=$PWD/target/release/lifeboat
command -v restic > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic > /dev/null
W=$(mktemp -d "$WORK/bench-incremental.XXXXXX")
R=$(mktemp -d "$RESTORE_DIR/bench-incr-restore.XXXXXX")
M=$W/tree
cleanup() { umount "$M" 2> /dev/null || true; rm -rf "$W" "$R"; }
trap cleanup EXIT
export RESTIC_PASSWORD=bench
printf '[paths]\nwork_dir = "%s/work"\noutput_dir = "%s/out"\nkey_dir = "%s/keys"\n' "$W" "$W" "$W" > "$W/lb.toml"

# A fresh overlay of TREE for each run: the same tree for both tools.
overlay() {
  umount "$M" 2> /dev/null || true
  rm -rf "$W/upper" "$W/ovwork"
  mkdir -p "$W/upper" "$W/ovwork" "$M"
  mount -t overlay overlay -o "lowerdir=$TREE,upperdir=$W/upper,workdir=$W/ovwork" "$M"
}
# Change 1% of the regular files (every 100th, by sorted path): append a line.
change() { find "$M" -xdev -type f -size -64M | sort | awk 'NR % 100 == 0' | while read -r f; do echo changed >> "$f"; done; }

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.3f-%.3f", lo, hi}'; }
# t CMD...: run it, print its seconds and peak RSS (KiB) as "S RSS".
t() {
  local s e
  s=$(now)
  /usr/bin/time -f %M -o "$W/rss" "$@" > /dev/null
  e=$(now)
  echo "$(echo "$e - $s" | bc) $(cat "$W/rss")"
}

run_lifeboat() { # prints: full unchanged changed restore rss_incr rss_restore
  rm -rf "$W/lbt" "$R/r"; mkdir -p "$W/lbt" "$R/r"; overlay
  local full unch chg res
  full=$(t "$LB" --config "$W/lb.toml" -q backup --full --target "file://$W/lbt" --volume-size 100G --root "$M" .)
  unch=$(t "$LB" --config "$W/lb.toml" -q backup --incremental --target "file://$W/lbt" --volume-size 100G --root "$M" .)
  change
  chg=$(t "$LB" --config "$W/lb.toml" -q backup --incremental --target "file://$W/lbt" --volume-size 100G --root "$M" .)
  sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null || true
  res=$(t "$LB" --config "$W/lb.toml" -q restore --from "file://$W/lbt" --to "$R/r")
  echo "${full% *} ${unch% *} ${chg% *} ${res% *} ${chg#* } ${res#* }"
  # The size of the chain: full, then the two increments.
  du -sb "$W"/lbt/*/* | awk '{printf "%s ", $1}' > "$W/lb-sizes"
}
run_restic() { # prints: full unchanged changed restore
  rm -rf "$W/restic" "$R/r"; mkdir -p "$R/r"; overlay
  restic init -q -r "$W/restic" > /dev/null
  local full unch chg res
  full=$(t restic -q -r "$W/restic" backup --one-file-system "$M")
  unch=$(t restic -q -r "$W/restic" backup --one-file-system "$M")
  change
  chg=$(t restic -q -r "$W/restic" backup --one-file-system "$M")
  sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null || true
  res=$(t restic -q -r "$W/restic" restore latest --target "$R/r")
  echo "${full% *} ${unch% *} ${chg% *} ${res% *}"
  du -sb "$W/restic" | cut -f1 > "$W/restic-size"
}

FILES=$(find "$TREE" -xdev -type f | wc -l)
BYTES=$(du -sb --apparent-size -x "$TREE" | cut -f1)
echo "tree $TREE: $FILES files, $((BYTES / 1000000)) MB; $REPEAT rounds, lifeboat and restic alternating"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%FT%TZ)"
declare -a lf lu lc lr rf ru rc rr q_u q_c q_uf q_cf q_r ri rs
for i in $(seq "$REPEAT"); do
  # Alternate which tool goes first, round by round.
  if [ $((i % 2)) -eq 1 ]; then a=$(run_lifeboat); b=$(run_restic); else b=$(run_restic); a=$(run_lifeboat); fi
  read -r l1 l2 l3 l4 l5 l6 <<< "$a"
  read -r r1 r2 r3 r4 <<< "$b"
  lf+=("$l1"); lu+=("$l2"); lc+=("$l3"); lr+=("$l4"); ri+=("$l5"); rs+=("$l6")
  rf+=("$r1"); ru+=("$r2"); rc+=("$r3"); rr+=("$r4")
  q_uf+=("$(echo "$l2 / $l1" | bc -l)"); q_cf+=("$(echo "$l3 / $l1" | bc -l)")
  q_u+=("$(echo "$l2 / $r2" | bc -l)"); q_c+=("$(echo "$l3 / $r3" | bc -l)"); q_r+=("$(echo "$l4 / $r4" | bc -l)")
  echo "round $i: lifeboat full $l1 s, unchanged $l2 s, 1% changed $l3 s, chain restore $l4 s | restic $r1 / $r2 / $r3 / restore $r4 s"
done
printf '\n%-34s %10s %10s\n' "median seconds" lifeboat restic
printf '%-34s %10.2f %10.2f\n' "full backup" "$(median "${lf[@]}")" "$(median "${rf[@]}")"
printf '%-34s %10.2f %10.2f\n' "second backup, tree unchanged" "$(median "${lu[@]}")" "$(median "${ru[@]}")"
printf '%-34s %10.2f %10.2f\n' "after changing 1% of the files" "$(median "${lc[@]}")" "$(median "${rc[@]}")"
printf '%-34s %10.2f %10.2f\n' "restore of the newest state" "$(median "${lr[@]}")" "$(median "${rr[@]}")"
echo
printf 'lifeboat unchanged / its full      %6.3f  (%s)   goal <= 0.05\n' "$(median "${q_uf[@]}")" "$(spread "${q_uf[@]}")"
printf 'lifeboat 1%% changed / its full     %6.3f  (%s)   goal <= 0.10\n' "$(median "${q_cf[@]}")" "$(spread "${q_cf[@]}")"
printf 'lifeboat / restic, unchanged       %6.3f  (%s)   goal <= 1\n' "$(median "${q_u[@]}")" "$(spread "${q_u[@]}")"
printf 'lifeboat / restic, 1%% changed      %6.3f  (%s)\n' "$(median "${q_c[@]}")" "$(spread "${q_c[@]}")"
printf 'lifeboat / restic, restore         %6.3f  (%s)\n' "$(median "${q_r[@]}")" "$(spread "${q_r[@]}")"
printf 'lifeboat peak RSS: incremental backup %s MiB, chain restore %s MiB (median)\n' \
  "$(($(median "${ri[@]}" | cut -d. -f1) / 1024))" "$(($(median "${rs[@]}" | cut -d. -f1) / 1024))"
echo "stored (last round): lifeboat full, unchanged increment, 1% increment: $(cat "$W/lb-sizes")bytes; restic repository $(cat "$W/restic-size") bytes"
