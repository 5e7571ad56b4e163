//! Backups to a real tape drive, in one VM: tgt's SSC (tape) and SMC
//! (changer) emulation, file-backed, exported over iSCSI on 127.0.0.1 and
//! attached with open-iscsi, so the kernel's st driver gives /dev/nst0 and
//! mtx drives the changer at /dev/sgN. Cases, in one boot: a backup to tape
//! restored to an equal tree and verified; a tape with a backup refused,
//! then overwritten when told; `lifeboat check` of the drive; the same
//! drive over SSH (sshd on loopback); throughput against
//! `tar | zstd | dd` to the same drive; a backup across two tapes through
//! the changer and through the prompt (an operator loop loads each tape
//! asked for), restored equal; unattended without a changer, a stop that
//! names the next tape.

use lifeboat_rescue::modules::ModuleIndex;
use lifeboat_vmtest::{Harness, Spec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Programs the guest needs beyond the harness's base (found on the host).
const PROGRAMS: &[&str] =
    &["tgtd", "tgtadm", "tgtimg", "iscsid", "iscsiadm", "mt", "mtx", "ssh", "sshd", "ssh-keygen", "ip", "mkfifo"];

/// Kernel modules: SCSI, the tape and generic drivers, the iSCSI initiator.
const MODULES: &[&str] = &["st", "sg", "iscsi_tcp"];

const SETUP: &str = r##"
set -euo pipefail
exec 2>&1
for m in $(cat /etc/tape-modules); do insmod "$m" 2>/dev/null || true; done
ip link set lo up
mkdir -p /var /etc/iscsi /var/lib/iscsi /run/lock/iscsi /etc/lifeboat
[ -e /var/run ] || ln -s /run /var/run
[ -e /var/lock ] || ln -s /run/lock /var/lock
echo "InitiatorName=iqn.2026-12.org.lifeboat:vm" > /etc/iscsi/initiatorname.iscsi
printf 'node.startup = manual\n' > /etc/iscsi/iscsid.conf

# The tape library: three tapes of 400 MB in slots 1-3 and five small ones
# in slots 4-8 (for backups across tapes), one drive, a changer.
V=/tmp/vtl; mkdir -p $V
dd if=/dev/zero of=$V/smc bs=1k count=1 status=none
for t in LB0001 LB0002 LB0003; do
  tgtimg --op new --device-type tape --barcode $t --size 400 --type data --file $V/$t > /dev/null
done
for t in SM0004 SM0005 SM0006 SM0007 SM0008; do
  tgtimg --op new --device-type tape --barcode $t --size 32 --type data --file $V/$t > /dev/null
done
tgtd -f --iscsi portal=127.0.0.1:3260 > /tmp/tgtd.log 2>&1 &
for i in $(seq 50); do tgtadm --lld iscsi --op show --mode target > /dev/null 2>&1 && break; sleep 0.2; done
T="tgtadm --lld iscsi"
$T --op new --mode target --tid 1 -T iqn.2026-12.org.lifeboat:vtl
$T --mode logicalunit --op new --tid 1 --lun 1 -b $V/LB0001 --device-type=tape
$T --mode logicalunit --op update --tid 1 --lun 1 --params online=0
$T --mode logicalunit --op new --tid 1 --lun 2 -b $V/smc --device-type=changer
$T --mode logicalunit --op update --tid 1 --lun 2 --params media_home=$V
$T --mode logicalunit --op update --tid 1 --lun 2 --params element_type=4,start_address=1,quantity=1
$T --mode logicalunit --op update --tid 1 --lun 2 --params element_type=4,address=1,tid=1,lun=1
$T --mode logicalunit --op update --tid 1 --lun 2 --params element_type=1,start_address=2,quantity=1
$T --mode logicalunit --op update --tid 1 --lun 2 --params element_type=2,start_address=3,quantity=8
for i in 1 2 3; do
  $T --mode logicalunit --op update --tid 1 --lun 2 --params element_type=2,address=$((i + 2)),barcode=LB000$i,sides=1
done
for i in 4 5 6 7 8; do
  $T --mode logicalunit --op update --tid 1 --lun 2 --params element_type=2,address=$((i + 2)),barcode=SM000$i,sides=1
done
$T --op bind --mode target --tid 1 -I ALL

# The initiator: log in on loopback, wait for the st and sg devices.
iscsid -f > /tmp/iscsid.log 2>&1 &
sleep 1
iscsiadm -m discovery -t sendtargets -p 127.0.0.1 > /dev/null
iscsiadm -m node --login > /dev/null
for i in $(seq 100); do [ -c /dev/nst0 ] && break; sleep 0.2; done
[ -c /dev/nst0 ] || { echo "no /dev/nst0"; cat /tmp/tgtd.log /tmp/iscsid.log; exit 1; }
CH=
for d in /sys/class/scsi_generic/sg*; do
  [ "$(cat $d/device/type)" = 8 ] && CH=/dev/$(basename $d)
done
[ -n "$CH" ] || { echo "no changer"; exit 1; }
echo "CHANGER $CH"
mtx -f $CH load 1 0
mt -f /dev/nst0 status | sed 's/^/MT /'

# The machine's files: incompressible, compressible, many small ones, a hard link.
mkdir -p /src/text
head -c 24M /dev/urandom > /src/random.bin
cp -a /usr/lib/x86_64-linux-gnu /src/lib
for i in $(seq 1 400); do seq $i 3 $((i * 40)) > /src/text/f$i; done
ln /src/text/f1 /src/text/hard
ln -s text/f2 /src/link
echo "SRC-BYTES $(du -sb /src | cut -f1)"
printf '[recover]\nregenerate_initramfs = false\n' > /etc/lifeboat/lifeboat.toml
"##;

const CASES: &str = r##"
ms() { date +%s%N | cut -c1-13; }
same() { diff -r --no-dereference "$1" "$2" > /tmp/diff.txt 2>&1 && echo yes || { head -5 /tmp/diff.txt; echo no; }; }

# 1. A backup to tape, restored and verified, forward only.
t0=$(ms)
lifeboat backup --target tape:///dev/nst0 --root /src . > /tmp/b1.log 2>&1 || { cat /tmp/b1.log; exit 1; }
t1=$(ms)
echo "BACKUP-MS $((t1 - t0))"
lifeboat backup list --target tape:///dev/nst0 > /tmp/list.txt 2>&1 || true
sed 's/^/LIST /' /tmp/list.txt
t0=$(ms)
lifeboat restore --from tape:///dev/nst0 --to /r1 > /tmp/r1.log 2>&1 || { cat /tmp/r1.log; exit 1; }
t1=$(ms)
echo "RESTORE-MS $((t1 - t0))"
echo "RESTORED-EQUAL $(same /src /r1)"
lifeboat verify --from tape:///dev/nst0 > /tmp/v1.log 2>&1 && echo "VERIFY ok" || { cat /tmp/v1.log; echo "VERIFY failed"; }
# The label is the first tape file, readable without lifeboat.
mt -f /dev/nst0 rewind
dd if=/dev/nst0 bs=1M count=1 of=/tmp/label.bin status=none
echo "LABEL $(tr -d '\0' < /tmp/label.bin)"

# 2. The tape holds a backup: refused, then overwritten when told.
if lifeboat backup --target tape:///dev/nst0 --root /src . > /tmp/b2.log 2>&1; then
  echo "REFUSED no"
else
  echo "REFUSED yes: $(grep -o 'holds a lifeboat backup[^:]*' /tmp/b2.log | head -1)"
fi
lifeboat backup --overwrite-tape --target tape:///dev/nst0 --root /src text > /tmp/b3.log 2>&1 \
  && echo "OVERWRITTEN yes" || { cat /tmp/b3.log; echo "OVERWRITTEN no"; }
rm -rf /r2; lifeboat restore --from tape:///dev/nst0 --to /r2 > /tmp/r2.log 2>&1 || cat /tmp/r2.log
echo "OVERWRITE-EQUAL $(same /src/text /r2/text) $( [ -e /r2/random.bin ] && echo old-data-seen || echo only-new)"

# 3. lifeboat check of the drive.
printf '[backup]\ntarget = "tape:///dev/nst0"\n[recover]\nregenerate_initramfs = false\n' > /etc/lifeboat/lifeboat.toml
lifeboat check > /tmp/check.txt 2>&1 || true
grep -A1 '^Tape ' /tmp/check.txt | sed 's/^/CHECK /'
printf '[recover]\nregenerate_initramfs = false\n' > /etc/lifeboat/lifeboat.toml

# 4. Throughput of tar | zstd | dd to the same drive, on the second tape.
mtx -f $CH unload 1 0
mtx -f $CH load 2 0
mt -f /dev/nst0 rewind
t0=$(ms)
# Whole blocks (conv=sync pads the last one): a short last block read back damaged from tgt's drive.
tar -C /src -cf - . | zstd -q -T0 -3 | dd of=/dev/nst0 bs=256k iflag=fullblock conv=sync status=none
t1=$(ms)
echo "TARZSTD-MS $((t1 - t0))"
mt -f /dev/nst0 rewind
t0=$(ms)
# zstd stops at the zero padding after the frame (and says so): the tree is out by then.
mkdir -p /r3; (dd if=/dev/nst0 bs=256k status=none | zstd -q -d 2>/dev/null | tar -C /r3 -xf -) || true
t1=$(ms)
echo "TARZSTD-RESTORE-MS $((t1 - t0))"
echo "TARZSTD-EQUAL $(same /src /r3)"

# 5. The same drive over SSH: sshd on loopback, no lifeboat needed on the tape host's side.
echo 'sshd:x:100:65534::/run/sshd:/usr/sbin/nologin' >> /etc/passwd
mkdir -p /run/sshd /root/.ssh /etc/ssh; chmod 700 /root/.ssh
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
cp /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys
printf 'Port 22\nListenAddress 127.0.0.1\nHostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n' > /etc/ssh/sshd_config
$(command -v sshd) -E /tmp/sshd.log
echo "127.0.0.1 $(cat /etc/ssh/ssh_host_ed25519_key.pub)" > /root/.ssh/known_hosts
mtx -f $CH unload 2 0
mtx -f $CH load 3 0
t0=$(ms)
lifeboat backup --target tape://root@127.0.0.1/dev/nst0 --root /src . > /tmp/b4.log 2>&1 || { cat /tmp/b4.log /tmp/sshd.log; }
t1=$(ms)
echo "REMOTE-BACKUP-MS $((t1 - t0))"
lifeboat restore --from tape://root@127.0.0.1/dev/nst0 --to /r4 > /tmp/r4.log 2>&1 || cat /tmp/r4.log
echo "REMOTE-EQUAL $(same /src /r4)"

# Backups larger than a tape. tgt's drive never reports the end of a tape
# (its tapes grow as written), so backup.tape.capacity ends each one after 12 MiB;
# the tree is about 22 MB after compression: two tapes.
drive_slot() { mtx -f $CH status | sed -n 's/.*(Storage Element \([0-9]*\) Loaded).*/\1/p'; }
swap_to() { s=$(drive_slot); [ -z "$s" ] || mtx -f $CH unload $s 0; mtx -f $CH load $1 0; }
mkdir -p /multi; head -c 20M /dev/urandom > /multi/random.bin; cp -a /src/text /multi/text
mtx -f $CH status | sed 's/^/MTX /'

# 6. Through the changer: tape 1 from slot 4, the changer loads slot 5 for tape 2; restore and verify find both.
swap_to 4
printf '[backup.tape]\nchanger = "%s"\ncapacity = "12M"\n[recover]\nregenerate_initramfs = false\n' $CH > /etc/lifeboat/lifeboat.toml
t0=$(ms)
lifeboat backup --target tape:///dev/nst0 --root /multi . < /dev/null > /tmp/b6.log 2>&1 \
  && echo "CHANGER-BACKUP ok" || { cat /tmp/b6.log; echo "CHANGER-BACKUP failed"; }
t1=$(ms)
echo "CHANGER-BACKUP-MS $((t1 - t0))"
echo "CHANGER-DRIVE-SLOT $(drive_slot)"
mt -f /dev/nst0 rewind
dd if=/dev/nst0 bs=1M count=1 of=/tmp/label6.bin status=none
echo "CHANGER-LABEL $(tr -d '\0' < /tmp/label6.bin)"
lifeboat backup list --target tape:///dev/nst0 < /dev/null 2>&1 | sed 's/^/LIST6 /' || true
t0=$(ms)
lifeboat restore --from tape:///dev/nst0 --to /r6 < /dev/null > /tmp/r6.log 2>&1 || cat /tmp/r6.log
t1=$(ms)
echo "CHANGER-RESTORE-MS $((t1 - t0))"
echo "CHANGER-EQUAL $(same /multi /r6)"
lifeboat verify --from tape:///dev/nst0 < /dev/null > /tmp/v6.log 2>&1 && echo "CHANGER-VERIFY ok" \
  || { cat /tmp/v6.log; echo "CHANGER-VERIFY failed"; }

# 7. Through the prompt, no changer: an operator (a background loop) answers
# each "insert tape ... tape K" by loading tape K (slot 5 + K) with mtx and pressing Enter.
printf '[backup.tape]\ncapacity = "12M"\n[recover]\nregenerate_initramfs = false\n' > /etc/lifeboat/lifeboat.toml
swap_to 6
mkfifo /tmp/answers
exec 3<>/tmp/answers
operator() {
  set +e
  n=0
  while sleep 0.3; do
    c=$(grep -o 'insert tape [^ ]* tape [0-9]*' "$1" 2>/dev/null | wc -l)
    [ "$c" -gt "$n" ] || continue
    n=$c
    k=$(grep -o 'insert tape [^ ]* tape [0-9]*' "$1" | tail -1 | awk '{print $NF}')
    swap_to $((5 + k)) > /dev/null 2>&1
    echo "PROMPT-ANSWERED tape $k"
    echo >&3
  done
}
operator /tmp/b7.log & op=$!
LIFEBOAT_TAPE_ASK=1 lifeboat backup --target tape:///dev/nst0 --root /multi . < /tmp/answers > /tmp/b7.log 2>&1 \
  && echo "PROMPT-BACKUP ok" || { cat /tmp/b7.log; echo "PROMPT-BACKUP failed"; }
kill $op; wait $op 2>/dev/null || true
operator /tmp/r7.log & op=$!
LIFEBOAT_TAPE_ASK=1 lifeboat restore --from tape:///dev/nst0 --to /r7 < /tmp/answers > /tmp/r7.log 2>&1 || cat /tmp/r7.log
kill $op; wait $op 2>/dev/null || true
echo "PROMPT-EQUAL $(same /multi /r7)"

# 8. Unattended, no changer: the backup stops naming the next tape, and nothing is listed as a backup.
swap_to 8
if lifeboat backup --target tape:///dev/nst0 --root /multi . < /dev/null > /tmp/b8.log 2>&1; then
  echo "UNATTENDED-EXIT 0"
else
  echo "UNATTENDED-EXIT $?"
fi
echo "UNATTENDED-SAYS $(grep -o 'needs another tape ([^)]*)' /tmp/b8.log | head -1)"
lifeboat backup list --target tape:///dev/nst0 < /dev/null 2>&1 | sed 's/^/LIST8 /' || true
printf '[recover]\nregenerate_initramfs = false\n' > /etc/lifeboat/lifeboat.toml
echo CASES-DONE
"##;

fn modules(h: &Harness) -> (Vec<(PathBuf, String)>, String) {
    let dir = &h.kernel.modules_dir;
    let idx = ModuleIndex::load(dir).expect("modules.dep");
    let order = idx.load_order(MODULES).expect("module order");
    let mut files = Vec::new();
    let mut list = String::new();
    for rel in order {
        let guest = format!(
            "/usr/local/lib/tape-modules/{}",
            Path::new(&rel).file_name().expect("module file").to_string_lossy()
        );
        files.push((dir.join(&rel), guest.clone()));
        list.push_str(&guest);
        list.push('\n');
    }
    (files, list)
}

fn which(p: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(p)).find(|p| p.exists())
}

fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

#[test]
fn backups_go_to_a_tape_drive_and_come_back_forward_only() {
    let Some(h) = Harness::for_tests() else { return };
    let missing: Vec<&str> = PROGRAMS.iter().copied().filter(|p| which(p).is_none()).collect();
    if !missing.is_empty() {
        eprintln!("SKIP: missing {} (apt-get install tgt open-iscsi mt-st mtx openssh-server)", missing.join(" "));
        return;
    }
    let share = tempfile::tempdir_in("/var/tmp").expect("tmp");
    let (mut files, list) = modules(&h);
    let list_file = share.path().join("tape-modules");
    std::fs::write(&list_file, list).expect("module list");
    files.push((list_file, "/etc/tape-modules".into()));
    for p in PROGRAMS {
        let host = which(p).expect("checked above");
        files.push((host.clone(), host.display().to_string()));
    }
    // The static build when there is one: the throughput printed is the release build's.
    let built = crate::common::guest_lifeboat();
    files.push((built, "/usr/local/bin/lifeboat".into()));
    let script = format!("{SETUP}\n{CASES}");
    let mut spec = Spec::new("tape", &script);
    spec.files = files;
    spec.memory_mib = 2048;
    spec.timeout = Duration::from_secs(600);
    let out = h.run(&spec).expect("vm");
    let log = out.log();
    eprintln!(
        "{}",
        out.output
            .lines()
            .filter(|l| l.contains("-MS ")
                || l.starts_with("SRC-BYTES")
                || l.starts_with("CHECK")
                || l.starts_with("MTX ")
                || l.starts_with("PROMPT-ANSWERED"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(out.status, 0, "{log}");
    let o = &out.output;
    assert!(o.contains("CASES-DONE"), "{log}");
    assert_eq!(value(o, "RESTORED-EQUAL"), Some("yes"), "the restored tree equals the source: {log}");
    assert_eq!(value(o, "VERIFY"), Some("ok"), "{log}");
    let label = value(o, "LABEL").unwrap_or_default();
    assert!(label.contains("\"format\":\"lifeboat-tape\"") && label.contains("\"tape\":1"), "{label}\n{log}");
    assert!(value(o, "REFUSED").is_some_and(|v| v.starts_with("yes")), "a tape with a backup is refused: {log}");
    assert_eq!(value(o, "OVERWRITTEN"), Some("yes"), "{log}");
    assert_eq!(value(o, "OVERWRITE-EQUAL"), Some("yes only-new"), "{log}");
    for item in ["Tape drive present", "Tape drive answers", "Tape writable", "Tape block size"] {
        let line = o.lines().find(|l| l.starts_with(&format!("CHECK {item}"))).unwrap_or_default();
        assert!(line.ends_with("Passed"), "{item}: {line}\n{log}");
    }
    assert_eq!(value(o, "REMOTE-EQUAL"), Some("yes"), "the backup over ssh restores equal: {log}");

    // Across two tapes through the changer.
    assert_eq!(value(o, "CHANGER-BACKUP"), Some("ok"), "{log}");
    assert_eq!(value(o, "CHANGER-DRIVE-SLOT"), Some("5"), "the changer loaded slot 5 for tape 2: {log}");
    let label = value(o, "CHANGER-LABEL").unwrap_or_default();
    assert!(
        label.contains("\"tape\":2") && label.contains("\"start\":12582912"),
        "tape 2 starts at 12 MiB: {label}\n{log}"
    );
    assert!(o.lines().any(|l| l.starts_with("LIST6 1 backup(s)")), "{log}");
    assert_eq!(value(o, "CHANGER-EQUAL"), Some("yes"), "restored across two tapes equal: {log}");
    assert_eq!(value(o, "CHANGER-VERIFY"), Some("ok"), "{log}");
    // Across two tapes through the prompt: asked for tape 2 (backup), then tapes 1 and 2 (restore).
    assert_eq!(value(o, "PROMPT-BACKUP"), Some("ok"), "{log}");
    let answered: Vec<&str> = o.lines().filter_map(|l| l.strip_prefix("PROMPT-ANSWERED ")).collect();
    assert_eq!(answered, ["tape 2", "tape 1", "tape 2"], "{log}");
    assert_eq!(value(o, "PROMPT-EQUAL"), Some("yes"), "{log}");
    // Unattended without a changer: stops, naming the tape; nothing listed as a backup.
    assert_ne!(value(o, "UNATTENDED-EXIT"), Some("0"), "{log}");
    let says = value(o, "UNATTENDED-SAYS").unwrap_or_default();
    assert!(says.contains("tape 2") && says.contains("needs another tape"), "{says}\n{log}");
    assert!(o.lines().any(|l| l.starts_with("LIST8 0 backup(s)")), "{log}");
    assert!(o.lines().any(|l| l.starts_with("LIST8 ") && l.contains("INTERRUPTED")), "{log}");

    // Throughput to the same virtual drive: lifeboat against tar | zstd | dd, of the same tree.
    let num = |k: &str| value(o, k).and_then(|v| v.parse::<f64>().ok());
    if let (Some(bytes), Some(lb), Some(tz), Some(lr), Some(tr)) =
        (num("SRC-BYTES"), num("BACKUP-MS"), num("TARZSTD-MS"), num("RESTORE-MS"), num("TARZSTD-RESTORE-MS"))
    {
        let mbs = |ms: f64| bytes / 1e6 / (ms / 1e3).max(0.001);
        let line = format!(
            "THROUGHPUT of {:.0} MB: backup lifeboat {:.1} MB/s, tar|zstd|dd {:.1} MB/s; restore lifeboat {:.1} MB/s, dd|zstd|tar {:.1} MB/s\n",
            bytes / 1e6,
            mbs(lb),
            mbs(tz),
            mbs(lr),
            mbs(tr)
        );
        eprint!("{line}");
        // Kept beside the cached images, to be read after CI (libtest hides a passing test's output).
        let _ = std::fs::write(lifeboat_vmtest::cache_dir().join("tape-throughput.txt"), line);
    }
}
