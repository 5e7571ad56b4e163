//! Recreation of the storage stacks this host's kernel cannot build (md
//! RAID1, LVM on RAID with a thin pool, LUKS2, LVM on LUKS, a vfat ESP,
//! swap), inside a QEMU guest running Debian's kernel: the stack is built
//! and filled, its layout saved and backed up, then the source disks are
//! wiped (a dead machine) and `lifeboat recover --map` rebuilds it onto
//! other disks of the same size, larger and smaller ones. Each time the
//! recovered layout must match the source's (UUIDs, labels, parameters,
//! the RAID/LUKS/LVM chain) and `lifeboat compare` must find the files
//! identical to the backup.

mod common;

use lifeboat_layout::Layout;
use lifeboat_vmtest::{Disk, Harness, Spec};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// Source disks vda..vdd; each scenario's targets follow in the same order.
const SCENARIOS: &[(&str, [u64; 4])] =
    &[("same", [512, 512, 512, 256]), ("larger", [768, 768, 768, 384]), ("smaller", [448, 448, 448, 192])];

/// After the shared stack (tests/vm/storage-stack.sh): filesystems, files,
/// the backup, and the recoveries.
const SCRIPT: &str = r##"mkdir -p /etc/lifeboat
printf '[recover]\nregenerate_initramfs = false\nbootloader = false\n[backup]\nvolume_size = "4M"\n' > /etc/lifeboat/lifeboat.toml
mkfs.ext4 -q -F -L root /dev/vgraid/root
mkfs.xfs -q -f -L srv /dev/vgraid/thin1
mkfs.btrfs -q -f -L homefs /dev/vgcrypt/home
mkfs.vfat -F 32 -i 5EED1234 -n ESP /dev/vdd1 >/dev/null
mkswap -q -L swp /dev/vdd2
mkdir -p /src /mnt/top
mount /dev/vgraid/root /src
mkdir -p /src/srv /src/home /src/boot/efi
mount /dev/vgraid/thin1 /src/srv
mount /dev/vgcrypt/home /mnt/top && btrfs -q subvolume create /mnt/top/@data && umount /mnt/top
mount -o subvol=@data /dev/vgcrypt/home /src/home
mount /dev/vdd1 /src/boot/efi
swapon /dev/vdd2
# Files with the attributes the archive keeps.
cd /src
mkdir -p etc srv/www home/alice boot/efi/EFI/BOOT
seq 1 100000 > srv/www/index.txt; ln srv/www/index.txt srv/www/hard; ln -s index.txt srv/www/link
head -c 3000000 /dev/urandom > home/alice/blob; chown -R 1000:1000 home/alice
setfacl -m u:1234:rx srv/www/index.txt; setfattr -n user.origin -v vm home/alice/blob
truncate -s 50M srv/sparse; printf x | dd of=srv/sparse bs=1 seek=20000000 conv=notrunc status=none
mknod etc/null c 1 3; chmod 4755 etc; echo loader > boot/efi/EFI/BOOT/BOOTX64.EFI
cd /
# Saved as the system it would be (mounted at /), then backed up.
lifeboat layout save --output /out/layout.toml
sed -i 's#"/src"#"/"#g; s#"/src/#"/#g' /out/layout.toml
mkdir -p /out/backups
lifeboat backup --target file:///out/backups --root /src . srv home boot/efi > /out/backup.log
echo "SOURCE-DONE"

# Stop a stack and erase every signature on its disks.
teardown() {
  umount -R "$1"; swapoff -a
  vgchange -q -an vgraid vgcrypt >/dev/null
  cryptsetup close cryptpv; mdadm --stop /dev/md0 >/dev/null 2>&1
  wipefs -q -a "$2"1 "$3"1 "$4" "$5"1 "$5"2 2>/dev/null || true
  wipefs -q -a "$2" "$3" "$5"
}
teardown /src /dev/vda /dev/vdb /dev/vdc /dev/vdd

set -- vde vdf vdg vdh same vdi vdj vdk vdl larger vdm vdn vdo vdp smaller
while [ $# -gt 0 ]; do
  a=/dev/$1 b=/dev/$2 c=/dev/$3 d=/dev/$4 name=$5; shift 5
  start=$(date +%s)
  if ! lifeboat recover --layout /out/layout.toml --from file:///out/backups \
       --map /dev/vda=$a --map /dev/vdb=$b --map /dev/vdc=$c --map /dev/vdd=$d \
       --root /target --keep-mounted --luks-key-file /tmp/key --yes > /out/recover-$name.log 2>&1; then
    tail -n 40 /out/recover-$name.log; echo "RECOVER-FAILED $name"; exit 1
  fi
  echo "RECOVERED $name in $(( $(date +%s) - start )) s"
  if [ $name = same ]; then
    # An intruder's work on the recovered box (/dev/null made /dev/mem, an
    # xattr value changed); then it is checked as from the rescue medium:
    # every filesystem mounted read-only.
    rm /target/etc/null; mknod /target/etc/null c 1 1
    setfattr -n user.origin -v evil /target/home/alice/blob
    for m in /target/boot/efi /target/home /target/srv /target; do mount -o remount,ro $m; done
  fi
  lifeboat compare --from file:///out/backups --root /target > /out/compare-$name.txt || true
  lifeboat layout save --output /out/layout-$name.toml
  teardown /target $a $b $c $d
done
"##;

/// What must be equal between the source and a recovered stack, whatever
/// the disks are called and however large they are.
fn identity(l: &Layout) -> Vec<String> {
    let mut v = Vec::new();
    for r in &l.raids {
        v.push(format!(
            "raid {} {} {} {:?} {:?} {} members={}",
            r.level,
            r.metadata,
            r.uuid,
            r.name,
            r.bitmap,
            r.raid_devices,
            r.members.len()
        ));
    }
    for x in &l.luks {
        v.push(format!(
            "luks{} {} {:?} {} {} {:?} {:?} {:?} {:?}",
            x.version, x.uuid, x.label, x.cipher, x.key_size, x.hash, x.pbkdf, x.sector_size, x.name
        ));
    }
    for p in &l.lvm.pvs {
        // The PV's device is named by its holder: md0 stays md0, the LUKS mapping keeps its name.
        v.push(format!("pv {} {} vg={:?}", p.device, p.uuid, p.vg));
    }
    for g in &l.lvm.vgs {
        v.push(format!("vg {} extent={}", g.name, g.extent_size));
    }
    for x in l.lvm.lvs.iter().filter(|x| !x.hidden) {
        let seg = x.segments.first().map(|s| s.segtype.as_str()).unwrap_or("");
        v.push(format!("lv {}/{} {seg} {} pool={:?}", x.vg, x.name, x.size, x.pool));
    }
    for f in &l.filesystems {
        let subs: Vec<&str> = f.subvolumes.iter().map(|s| s.path.as_str()).collect();
        let mut feats: Vec<&String> = f.params.features.iter().filter(|x| *x != "needs_recovery").collect();
        feats.sort();
        v.push(format!(
            "fs {} {:?} {:?} block={:?} inode={:?} {feats:?} {subs:?}",
            f.fstype, f.uuid, f.label, f.params.block_size, f.params.inode_size
        ));
    }
    for s in &l.swaps {
        v.push(format!("swap {:?} {:?}", s.uuid, s.label));
    }
    for d in l.disks.iter().filter(|d| d.table.is_some()) {
        for p in d.table.iter().flat_map(|t| &t.partitions) {
            v.push(format!("partition {} {:?} {:?}", p.part_type.to_ascii_lowercase(), p.name, p.uuid));
        }
    }
    v.sort();
    v
}

#[test]
fn raid_lvm_thin_and_luks_stacks_are_recreated_onto_other_disks() {
    let Some(h) = Harness::for_tests() else { return };
    let share = tempfile::tempdir_in("/var/tmp").expect("tmp");
    let script = format!("set -euo pipefail\nexec 2>&1\n{}\n{SCRIPT}", include_str!("vm/storage-stack.sh"));
    let mut spec = Spec::new("recover-storage-stacks", &script);
    let names = ["raid-a", "raid-b", "crypt", "boot"];
    spec.disks = names.iter().zip(SCENARIOS[0].1).map(|(n, s)| Disk::blank(&format!("src-{n}"), s * MIB)).collect();
    for (scenario, sizes) in SCENARIOS {
        spec.disks.extend(names.iter().zip(sizes).map(|(n, s)| Disk::blank(&format!("{scenario}-{n}"), s * MIB)));
    }
    spec.files = vec![(env!("CARGO_BIN_EXE_lifeboat").into(), "/usr/local/bin/lifeboat".into())];
    spec.share = Some(share.path().to_path_buf());
    spec.memory_mib = 1536;
    spec.timeout = Duration::from_secs(900);
    let out = h.run(&spec).expect("vm");
    let read = |f: &str| std::fs::read_to_string(share.path().join(f)).unwrap_or_default();
    let log = out.log();
    assert_eq!(out.status, 0, "{log}");
    eprintln!("{}", out.output.lines().filter(|l| l.starts_with("RECOVERED")).collect::<Vec<_>>().join("\n"));

    let source = Layout::load(&share.path().join("layout.toml")).expect("source layout");
    let want = identity(&source);
    // The source really is the stack this test is about.
    for needle in
        ["raid raid1 1.2", "luks2 ", "pv /dev/md0", "pv /dev/mapper/cryptpv", "thin-pool", "fs btrfs", "fs vfat"]
    {
        assert!(want.iter().any(|x| x.starts_with(needle) || x.contains(needle)), "{needle} in {want:#?}");
    }
    for (scenario, sizes) in SCENARIOS {
        let recovered = Layout::load(&share.path().join(format!("layout-{scenario}.toml")))
            .unwrap_or_else(|e| panic!("{scenario}: {e}\n{log}\n{}", read(&format!("recover-{scenario}.log"))));
        assert_eq!(identity(&recovered), want, "{scenario}: the recovered stack differs from the source");

        // Sizes as planned: the RAID members and the array follow the disks, the ESP and swap keep theirs.
        let raid_old = source.raids[0].size;
        let raid_new = recovered.raids[0].size;
        match *scenario {
            "same" => assert_eq!(raid_new, raid_old, "same size: the array is as large as before"),
            "larger" => assert!(raid_new > raid_old, "larger: the array grows ({raid_old} -> {raid_new})"),
            _ => assert!(raid_new < raid_old, "smaller: the array shrinks ({raid_old} -> {raid_new})"),
        }
        let boot_disk = recovered
            .disks
            .iter()
            .find(|d| d.serial.as_deref() == Some(&format!("{scenario}-boot")))
            .expect("the boot disk in the recovered layout");
        assert_eq!(boot_disk.size, sizes[3] * MIB);
        let sizes_of = |l: &Layout, serial: &str| -> Vec<u64> {
            l.disks
                .iter()
                .find(|d| d.serial.as_deref() == Some(serial))
                .and_then(|d| d.table.as_ref())
                .map(|t| t.partitions.iter().map(|p| p.size).collect())
                .unwrap_or_default()
        };
        assert_eq!(sizes_of(&recovered, &format!("{scenario}-boot")), sizes_of(&source, "src-boot"), "ESP and swap");

        // The files: nothing differs from the backup but recovery's own log.
        let cmp = read(&format!("compare-{scenario}.txt"));
        let diffs: Vec<&str> = cmp
            .lines()
            .filter(|l| !l.contains(" difference(s) between ") && !l.contains(" matches the backup "))
            .filter(|l| {
                let p = l.split_whitespace().nth(1).unwrap_or("");
                // Recovery's own log: var/log/lifeboat, and with it the times of var and of the root directory.
                !(p.starts_with("var/log") || p == "var" || p == ".")
            })
            .collect();
        assert!(cmp.contains("difference") || cmp.contains("matches"), "{scenario}: compare ran: {cmp}\n{log}");
        if *scenario == "same" {
            // The intrusion check from the rescue side, on read-only mounts: the tampering and nothing else.
            let mut got: Vec<String> =
                diffs.iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
            got.sort();
            let want = [
                "changed etc (mtime ",
                "changed etc/null (mtime ",
                "changed home/alice/blob (xattr user.origin changed)",
            ];
            assert_eq!(got.len(), want.len(), "compare names each change on the tampered box, and nothing else: {cmp}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.starts_with(w), "{w:?} expected, got {g:?}:\n{cmp}");
            }
            assert!(got[1].contains(", device 1:3 -> 1:1)"), "the device numbers are named: {got:?}");
            continue;
        }
        assert!(diffs.is_empty(), "{scenario}: the recovered files differ from the backup:\n{}", diffs.join("\n"));
    }
}

/// A backup on an NFS export, as `mkbackup` records it: the rescue side
/// mounts the export itself (read-only) and recovers from it. The guest is
/// its own NFS server (knfsd on loopback).
const NFS_SCRIPT: &str = r##"set -euo pipefail
exec 2>&1
ip link set lo up
# The NFS server: /export on its own disk.
mkfs.ext4 -q /dev/vda; mkdir -p /export; mount /dev/vda /export
mkdir -p /proc/fs/nfsd /var/lib/nfs/v4recovery /run/rpcbind
mount -t nfsd nfsd /proc/fs/nfsd
echo '/export 127.0.0.1(rw,no_root_squash,no_subtree_check,fsid=0)' > /etc/exports
# NFSv4 only: no rpcbind needed.
exportfs -ra; rpc.mountd -N 2 -N 3; rpc.nfsd -N 3 2
# The machine: a filesystem with files, backed up onto the NFS mount.
mkfs.ext4 -q -L data /dev/vdb; mkdir -p /src /mnt/nfs
mount /dev/vdb /src
mkdir -p /src/www; seq 1 50000 > /src/www/index.txt; ln /src/www/index.txt /src/www/hard
setfacl -m u:1234:r /src/www/index.txt; chown -R 33:33 /src/www
mount -t nfs4 127.0.0.1:/ /mnt/nfs
echo "FINDMNT $(findmnt -n -o SOURCE,TARGET,FSTYPE -T /mnt/nfs/backups 2>/dev/null || findmnt -n -o SOURCE,TARGET,FSTYPE -T /mnt/nfs)"
mkdir -p /mnt/nfs/backups /etc/lifeboat
printf '[recover]\nregenerate_initramfs = false\nbootloader = false\n' > /etc/lifeboat/lifeboat.toml
lifeboat layout save --output /tmp/layout.toml
sed -i 's#"/src"#"/"#g' /tmp/layout.toml
lifeboat backup --target file:///mnt/nfs/backups --root /src . > /dev/null
dir=$(ls -d /mnt/nfs/backups/*/* | tail -n 1)
# What the rescue medium knows: the export, and where it was mounted.
printf '{"kind":"target","path":"%s","fs_mountpoint":"/mnt/nfs","nfs":"127.0.0.1:/"}\n' "$dir" > /etc/lifeboat/backup-location.json
umount /mnt/nfs; umount /src
# The machine's disk is dead: a second filesystem with its UUID would be refused as a collision.
wipefs -q -a /dev/vdb
lifeboat recover --layout /tmp/layout.toml --map /dev/vdb=/dev/vdc --root /target --keep-mounted --yes > /tmp/recover.log 2>&1 \
  || { tail -n 30 /tmp/recover.log; exit 1; }
echo "NFS-MOUNTED $(findmnt -n -o SOURCE,OPTIONS /run/lifeboat/backup)"
mount -t nfs4 -o ro 127.0.0.1:/ /mnt/nfs
# Recovery adds only its own log (var/log/lifeboat), which changes the time of the root directory.
lifeboat compare --from file:///mnt/nfs/backups --root /target > /tmp/cmp.txt || true
if grep -vE '^added +var(/log(/lifeboat.*)?)?$|^changed +\. +\(mtime [0-9.]+ -> [0-9.]+\)$| difference\(s\) between ' /tmp/cmp.txt | grep -q .; then cat /tmp/cmp.txt; else echo "COMPARE-OK"; fi
"##;

#[test]
fn a_backup_on_nfs_is_found_and_mounted_by_recovery() {
    let Some(h) = Harness::for_tests() else { return };
    let mut spec = Spec::new("recover-from-nfs", NFS_SCRIPT);
    spec.disks = vec![Disk::blank("nfs", 256 * MIB), Disk::blank("data", 128 * MIB), Disk::blank("new", 160 * MIB)];
    spec.files = vec![(env!("CARGO_BIN_EXE_lifeboat").into(), "/usr/local/bin/lifeboat".into())];
    let out = h.run(&spec).expect("vm");
    let log = out.log();
    assert_eq!(out.status, 0, "{log}");
    // The shape mkbackup parses: SOURCE TARGET FSTYPE, an nfs type.
    let fm = out.output.lines().find_map(|l| l.strip_prefix("FINDMNT ")).unwrap_or_default();
    assert!(fm.starts_with("127.0.0.1:/ /mnt/nfs nfs4"), "{fm}\n{log}");
    let mounted = out.output.lines().find_map(|l| l.strip_prefix("NFS-MOUNTED ")).unwrap_or_default();
    assert!(
        mounted.starts_with("127.0.0.1:/ ") && mounted.contains("ro"),
        "recovery mounted the export read-only: {log}"
    );
    assert!(out.output.contains("COMPARE-OK"), "the recovered files equal the backup: {log}");
}
