#!/usr/bin/env bash
# bench/rescue.sh — rescue media build time and size: lifeboat against ReaR
# (Debian's `rear`, OUTPUT=ISO) on the same machine, the same kernel, in one run.
# Run as root from the repository: bash bench/rescue.sh [RUNS]   (default 3 runs each)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
command -v rear >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rear >/dev/null
cargo build --release --locked -q
LB=$PWD/target/release/lifeboat
# The newest installed kernel with an image and modules (what both tools get).
KVER=$(for v in $(ls -1 /lib/modules | sort -V); do [ -f /boot/vmlinuz-$v ] && [ -f /lib/modules/$v/modules.dep ] && echo $v; done | tail -n 1)
W=$(mktemp -d /var/tmp/bench-rescue.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/rear-conf" "$W/rear-out" "$W/lb"
cat > "$W/rear-conf/local.conf" <<CONF
OUTPUT=ISO
OUTPUT_URL=file://$W/rear-out
BACKUP=REQUESTRESTORE
KERNEL_VERSION=$KVER
KERNEL_FILE=/boot/vmlinuz-$KVER
# This VM has no bootloader of its own for ReaR to detect.
BOOTLOADER=GRUB2
CONF
cat > "$W/lb/lifeboat.toml" <<CONF
[paths]
work_dir = "$W/lb/work"
output_dir = "$W/lb/out"
layout_file = "$W/lb/layout.toml"
CONF
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
best() { sort -n | head -n 1; }
rear_times=(); lb_times=()
for i in $(seq "$RUNS"); do
  rm -rf "$W/rear-out"/*
  s=$(date +%s.%N); rear -c "$W/rear-conf" mkrescue >"$W/rear.log" 2>&1 || { cat "$W/rear.log"; exit 1; }
  rear_times+=("$(echo "$(date +%s.%N) - $s" | bc)")
  s=$(date +%s.%N); "$LB" --config "$W/lb/lifeboat.toml" -q mkrescue --kernel "/boot/vmlinuz-$KVER" >"$W/lb.log"
  lb_times+=("$(echo "$(date +%s.%N) - $s" | bc)")
done
rear_iso=$(find "$W/rear-out" -name '*.iso' | head -n 1)
lb_iso=$(find "$W/lb/out" -name '*.iso' | head -n 1)
rt=$(printf '%s\n' "${rear_times[@]}" | best); lt=$(printf '%s\n' "${lb_times[@]}" | best)
rs=$(stat -c %s "$rear_iso"); ls=$(stat -c %s "$lb_iso")
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, kernel for the media: $KVER, best of $RUNS runs"
printf '%-30s %10s %12s\n' tool "build s" "ISO MiB"
printf '%-30s %10.1f %12.1f\n' "ReaR $(rear -V | awk '{print $2}') (rear mkrescue)" "$rt" "$(echo "$rs/1048576" | bc -l)"
printf '%-30s %10.1f %12.1f\n' "lifeboat $($LB --version | awk '{print $2}') (lifeboat mkrescue)" "$lt" "$(echo "$ls/1048576" | bc -l)"
printf 'lifeboat is %.1fx faster; its ISO is %.2fx the size of ReaR'"'"'s\n' "$(echo "$rt/$lt" | bc -l)" "$(echo "$ls/$rs" | bc -l)"
