#!/usr/bin/env bash
# bench/targets.sh — backup and restore throughput of lifeboat to file://,
# sftp:// and s3:// on the same tree in one run, and restic to the same SFTP
# and S3 servers; then what encryption costs to file://. The servers are
# loopback ones this script starts and stops: an sshd with its own host key,
# authorized key and known_hosts (lifeboat reaches it through
# LIFEBOAT_SSH_CONFIG, restic through -o sftp.command), and a single-node
# Garage (the cached binary tests/garage.sh builds) with a bucket and a key.
# Runs alternate (each round backs up to every target in turn, then restores
# from every one): ratios are the median of the per-round ratios with their
# spread (min-max), as in bench/archive.sh.
# Run as root from the repository:
#   REPEAT=3 RESTORE_DIR=/dev/shm bash bench/targets.sh [TREE...]
# TREE (default /usr/share) is backed up as one filesystem unit each.
# LB=/path/to/lifeboat measures that binary (no build); GARAGE=/path/to/garage
# picks the Garage binary; ENCRYPTION=0 skips the encrypted runs.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (sshd, restore of owners)" >&2; exit 1; }
TREES=("${@:-/usr/share}")
REPEAT=${REPEAT:-3}
LEVEL=${LEVEL:-3}
ENCRYPTION=${ENCRYPTION:-1}
GARAGE=${GARAGE:-/var/tmp/lifeboat-garage/bin/garage}
[ -x "$GARAGE" ] || { echo "no Garage binary at $GARAGE (run tests/garage.sh or make test-deps)" >&2; exit 1; }
command -v restic >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
command -v age-keygen >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age >/dev/null
# LB=/path/to/lifeboat measures that binary as it is; otherwise the release
# build, rebuilt only when a source is newer (cargo waits for the build lock itself).
if [ -z "${LB:-}" ]; then LB=$PWD/target/release/lifeboat; fi
if [ "$LB" = "$PWD/target/release/lifeboat" ] && { [ ! -x "$LB" ] || [ -n "$(find crates Cargo.toml Cargo.lock -newer "$LB" \( -name '*.rs' -o -name '*.toml' -o -name Cargo.lock \) -print -quit)" ]; }; then
  cargo build --release --locked -q -p lifeboat
fi
W=$(mktemp -d /var/tmp/bench-targets.XXXXXX)
R=$(mktemp -d "${RESTORE_DIR:-$W}/bench-restore.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W" "$R"; }
trap cleanup EXIT
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "$2 did not listen on $1" >&2; exit 1; }

# --- sshd on 127.0.0.1 -------------------------------------------------------
S=$W/ssh
mkdir -p "$S" "$W/sftp" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$S/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$S/id"
cp "$S/id.pub" "$S/authorized_keys"; chmod 600 "$S/authorized_keys"
SSH_PORT=$(free_port)
cat > "$S/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $S/host_key
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile $S/sshd.pid
Subsystem sftp internal-sftp
CONF
echo "[127.0.0.1]:$SSH_PORT $(cat "$S/host_key.pub")" > "$S/known_hosts"
cat > "$S/ssh_config" <<CONF
Host vault
  HostName 127.0.0.1
  Port $SSH_PORT
  User root
  IdentityFile $S/id
  IdentitiesOnly yes
  UserKnownHostsFile $S/known_hosts
  GlobalKnownHostsFile /dev/null
CONF
/usr/sbin/sshd -D -e -f "$S/sshd_config" 2> "$S/sshd.log" &
PIDS+=($!)
wait_port "$SSH_PORT" sshd
export LIFEBOAT_SSH_CONFIG=$S/ssh_config
SFTP_CMD="ssh -F $S/ssh_config vault -s sftp"

# --- Garage, one node on 127.0.0.1 --------------------------------------------
G=$W/garage
mkdir -p "$G/meta" "$G/data"
S3_PORT=$(free_port); RPC_PORT=$(free_port)
BUCKET=bench REGION=garage
KEY_ID=GK0123456789abcdef01234567
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
# compression_level = "none": both tools send compressed data, and the
# server's CPU is this machine's (2 cores) — a real server compresses on its own.
cat > "$G/garage.toml" <<CONF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "lmdb"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$S3_PORT"
CONF
RUST_LOG=garage=warn "$GARAGE" -c "$G/garage.toml" server < /dev/null > "$G/garage.log" 2>&1 &
PIDS+=($!)
garage() { "$GARAGE" -c "$G/garage.toml" "$@"; }
for i in $(seq 150); do garage status > /dev/null 2>&1 && break; [ "$i" = 150 ] && { cat "$G/garage.log"; exit 1; }; sleep 0.2; done
NODE=$(garage node id -q 2>/dev/null); NODE=${NODE%%@*}
garage layout assign -z dc1 -c 100G "$NODE" > /dev/null
garage layout apply --version 1 > /dev/null
garage bucket create "$BUCKET" > /dev/null
garage key import --yes -n bench "$KEY_ID" "$SECRET" > /dev/null
garage bucket allow --read --write --owner "$BUCKET" --key bench > /dev/null
wait_port "$S3_PORT" garage
export AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET RESTIC_PASSWORD=bench

# --- configurations -------------------------------------------------------------
conf() {
  cat <<CONF
[paths]
work_dir = "$W/work"
output_dir = "$W/out"
layout_file = "$W/layout.toml"
[backup]
level = $LEVEL
$1
[backup.s3]
endpoint = "http://127.0.0.1:$S3_PORT"
region = "$REGION"
path_style = true
access_key_id = "$KEY_ID"
secret_access_key = "$SECRET"
CONF
}
conf "" > "$W/lb.toml"
age-keygen -o "$W/age.key" 2> /dev/null
conf "recipients = [\"$(age-keygen -y "$W/age.key")\"]
identity_file = \"$W/age.key\"" > "$W/lb-enc.toml"

# --- the tools: backup_X and restore_X of round $N ------------------------------
REL=(); for t in "${TREES[@]}"; do REL+=("${t#/}"); done
lbb() { "$LB" --config "$W/$1" -q backup --target "$2" --volume-size 100G --root / "${REL[@]}" > /dev/null; }
lbr() { "$LB" --config "$W/$1" -q restore --from "$2" --to "$R/r" > /dev/null; }
backup_lb_file() { lbb lb.toml "file://$W/file/$N"; }
restore_lb_file() { lbr lb.toml "file://$W/file/$N"; }
backup_lb_sftp() { lbb lb.toml "sftp://vault$W/sftp/lb-$N"; }
restore_lb_sftp() { lbr lb.toml "sftp://vault$W/sftp/lb-$N"; }
backup_lb_s3() { lbb lb.toml "s3://$BUCKET/lb-$N"; }
restore_lb_s3() { lbr lb.toml "s3://$BUCKET/lb-$N"; }
backup_lb_enc() { lbb lb-enc.toml "file://$W/enc/$N"; }
restore_lb_enc() { lbr lb-enc.toml "file://$W/enc/$N"; }
rs_sftp() { restic -q -r "sftp:vault:$W/sftp/restic-$N" -o sftp.command="$SFTP_CMD" "$@"; }
rs_s3() { restic -q -r "s3:http://127.0.0.1:$S3_PORT/$BUCKET/restic-$N" -o s3.region=$REGION "$@"; }
prep_lb_file() { mkdir -p "$W/file/$N"; }
prep_lb_sftp() { mkdir -p "$W/sftp/lb-$N"; }
prep_lb_enc() { mkdir -p "$W/enc/$N"; }
prep_rs_sftp() { rs_sftp init > /dev/null; }
prep_rs_s3() { rs_s3 init > /dev/null; }
backup_rs_sftp() { rs_sftp backup --one-file-system "${TREES[@]}" > /dev/null; }
restore_rs_sftp() { rs_sftp restore latest --target "$R/r" > /dev/null; }
backup_rs_s3() { rs_s3 backup --one-file-system "${TREES[@]}" > /dev/null; }
restore_rs_s3() { rs_s3 restore latest --target "$R/r" > /dev/null; }

TOOLS=(lb_file lb_sftp lb_s3 rs_sftp rs_s3)
[ "$ENCRYPTION" = 1 ] && TOOLS+=(lb_enc)
declare -A BT RT
timed() { local s; s=$(now); "$@" || { echo "failed: $*" >&2; return 1; }; echo "$(now) - $s" | bc; }

echo "warming the cache (${TREES[*]})..."
tar -cf - --one-file-system -C / "${REL[@]}" | wc -c > /dev/null
BYTES=$(du -scb --apparent-size -x "${TREES[@]}" | tail -1 | cut -f1)
echo "tree: ${TREES[*]}, $(echo "$BYTES/1000000" | bc) MB, $(find "${TREES[@]}" -xdev | wc -l) entries; $(nproc) cores; zstd level $LEVEL; $REPEAT rounds"
echo "lifeboat $("$LB" --version | awk '{print $2}'), $(restic version | awk '{print $1, $2}'), $("$GARAGE" --version | awk '{print "garage", $2}'), $(ssh -V 2>&1 | cut -d, -f1)"
for N in $(seq "$REPEAT"); do
  for t in "${TOOLS[@]}"; do
    if declare -F "prep_$t" > /dev/null; then "prep_$t"; fi
    sync
    x=$(timed "backup_$t") || exit 1; BT[$t]+="$x "
  done
  for t in "${TOOLS[@]}"; do
    rm -rf "$R/r"; mkdir -p "$R/r"; sync
    x=$(timed "restore_$t") || exit 1; RT[$t]+="$x "
  done
  rm -rf "$R/r" "$W/file" "$W/enc" "$W"/sftp/*
  echo "round $N: backup ${TOOLS[*]}: $(for t in "${TOOLS[@]}"; do echo "${BT[$t]}" | awk -v n="$N" '{printf "%.1f ", $n}'; done)s; restore: $(for t in "${TOOLS[@]}"; do echo "${RT[$t]}" | awk -v n="$N" '{printf "%.1f ", $n}'; done)s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mbs() { local m; m=$(median $1); echo "$BYTES/1000000/$m" | bc -l; }
# ratio "TIMES_A" "TIMES_B": median, min and max over the rounds of B/A (A's throughput as a multiple of B's).
ratio() {
  local a=($1) b=($2) rs=() i
  for i in "${!a[@]}"; do rs+=("$(echo "${b[$i]} / ${a[$i]}" | bc -l)"); done
  printf '%.2f (%.2f-%.2f)' "$(median "${rs[@]}")" "$(printf '%s\n' "${rs[@]}" | sort -g | head -1)" "$(printf '%s\n' "${rs[@]}" | sort -g | tail -1)"
}
echo
printf '%-9s | %9s %9s | %9s %9s | %-17s %-17s | %-17s %-17s\n' target "lb back" "lb rest" "rs back" "rs rest" "lb back / file" "lb rest / file" "lb/restic back" "lb/restic rest"
printf '%-9s | %9s %9s | %9s %9s |\n' "" MB/s MB/s MB/s MB/s
for tg in file sftp s3; do
  lb=lb_$tg rs=rs_$tg
  printf '%-9s | %9.1f %9.1f | ' "$tg://" "$(mbs "${BT[$lb]}")" "$(mbs "${RT[$lb]}")"
  if [ -n "${BT[$rs]:-}" ]; then printf '%9.1f %9.1f | ' "$(mbs "${BT[$rs]}")" "$(mbs "${RT[$rs]}")"; else printf '%9s %9s | ' - -; fi
  if [ "$tg" = file ]; then printf '%-17s %-17s | ' - -; else printf '%-17s %-17s | ' "$(ratio "${BT[$lb]}" "${BT[lb_file]}")" "$(ratio "${RT[$lb]}" "${RT[lb_file]}")"; fi
  if [ -n "${BT[$rs]:-}" ]; then printf '%-17s %-17s\n' "$(ratio "${BT[$lb]}" "${BT[$rs]}")" "$(ratio "${RT[$lb]}" "${RT[$rs]}")"; else printf '%-17s %-17s\n' - -; fi
done
if [ "$ENCRYPTION" = 1 ]; then
  echo
  printf 'encrypted (age, one recipient) to file://: backup %.1f MB/s, restore %.1f MB/s\n' "$(mbs "${BT[lb_enc]}")" "$(mbs "${RT[lb_enc]}")"
  printf '  encrypted / plain throughput: backup %s, restore %s (median of %d rounds; min-max)\n' \
    "$(ratio "${BT[lb_enc]}" "${BT[lb_file]}")" "$(ratio "${RT[lb_enc]}" "${RT[lb_file]}")" "$REPEAT"
fi
echo "(ratios: median of the $REPEAT per-round ratios of throughput, min-max in brackets)"
