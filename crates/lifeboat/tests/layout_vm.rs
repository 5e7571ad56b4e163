//! Layout capture of the storage stacks this host's kernel cannot build (no
//! device-mapper, no md, no vfat): md RAID1, LVM on RAID with a thin pool,
//! LUKS2, LVM on LUKS, a vfat ESP and swap, built inside a QEMU guest running
//! Debian's kernel. lifeboat captures them in the guest; the host checks every
//! UUID, label, size and dependency, and that `layout diff` sees a change.
//! The same guest runs `backup --snapshot` of an ext4 on a classic LV and
//! an xfs on a thin LV (the LVM half of snapshot backups; btrfs is in
//! snapshot_host.rs).

mod common;

use lifeboat_layout::Layout;
use lifeboat_vmtest::{Disk, Harness, Spec};

const MIB: u64 = 1 << 20;
const RAID_ROOT_UUID: &str = "2b7e151f-0a4c-4d3e-9f1a-6c5d4e3f2a11";
const THIN_XFS_UUID: &str = "7a1c3e5f-2b4d-4f6a-8c0e-1d3f5a7c9e22";
const LUKS_UUID: &str = "c0ffee00-1234-4abc-9def-0123456789ab";
const HOME_BTRFS_UUID: &str = "4e6a8c0e-1f3b-4d5f-a7c9-2e4a6c8e0f33";
const SWAP_UUID: &str = "8d0f2b4d-6e8a-4c1e-b3d5-7f9b1d3f5a44";

/// The stack is built by the shared script; then its filesystems, with known UUIDs.
const STACK: &str = include_str!("vm/storage-stack.sh");
const SCRIPT: &str = r#"mkfs.ext4 -q -F -L raidroot -U RAID_ROOT_UUID /dev/vgraid/root
mkfs.xfs -q -f -L thinfs -m uuid=THIN_XFS_UUID /dev/vgraid/thin1
mkfs.btrfs -q -f -L homefs -U HOME_BTRFS_UUID /dev/vgcrypt/home
mkfs.vfat -F 32 -i 5EED1234 -n ESP /dev/vdd1 >/dev/null
mkswap -q -L swp -U SWAP_UUID /dev/vdd2
mkdir -p /mnt/root /mnt/home /boot/efi
mount /dev/vgraid/root /mnt/root
mount /dev/vgcrypt/home /mnt/home
btrfs -q subvolume create /mnt/home/@data
mount /dev/vdd1 /boot/efi
mkdir -p /boot/efi/EFI/debian && echo x > /boot/efi/EFI/debian/grubx64.efi
swapon /dev/vdd2
printf '/dev/mapper/vgraid-root / ext4 defaults 0 1\nUUID=SWAP_UUID none swap sw 0 0\n' > /etc/fstab
printf 'cryptpv UUID=LUKS_UUID none luks\n' > /etc/crypttab
echo "MD_UUID=$(mdadm --detail --export /dev/md0 | sed -n 's/^MD_UUID=//p')"

lifeboat layout save --output /out/layout.toml
lifeboat layout show /out/layout.toml > /out/show.txt
echo "--- diff unchanged"
lifeboat layout diff /out/layout.toml && echo "diff_unchanged_rc=0"
lvcreate -q -y -L 8M -n extra vgcrypt
echo "--- diff changed"
set +e
lifeboat layout diff /out/layout.toml
echo "diff_changed_rc=$?"

echo "--- snapshot backup: ext4 on a classic LV, xfs on a thin LV"
mkdir -p /mnt/thin
mount /dev/vgraid/thin1 /mnt/thin
for d in /mnt/root /mnt/thin; do seq 1 50000 > $d/numbers; echo "$d" > $d/name; done
# A snapshot a killed run left, mounted where lifeboat mounts them: removed first, said so.
lvcreate -q -y -s -n root-lifeboat-snap -L 8M vgraid/root
mkdir -p /var/lib/lifeboat/snapshots/0
mount -o ro,noload /dev/vgraid/root-lifeboat-snap /var/lib/lifeboat/snapshots/0
mkdir -p /tmp/snapt /tmp/snapt2
lifeboat backup --snapshot --target file:///tmp/snapt --root /mnt root thin
echo "snap_backup_rc=$?"
echo "snap_left=$(lvs --noheadings -o lv_name | grep -c lifeboat-snap)"
echo "snap_mounts=$(grep -c /var/lib/lifeboat/snapshots /proc/mounts)"
lifeboat restore --from file:///tmp/snapt --to /tmp/snapr
diff -r --exclude=lost+found /mnt/root /tmp/snapr/root && diff -r /mnt/thin /tmp/snapr/thin
echo "snap_diff_rc=$?"
printf '[backup]\nsnapshot_size = "4G"\n' > /tmp/big.toml
lifeboat --config /tmp/big.toml backup --snapshot --target file:///tmp/snapt2 --root /mnt root
echo "snap_noroom_rc=$?"
echo "snap_left_after_refusal=$(lvs --noheadings -o lv_name | grep -c lifeboat-snap)"
"#;

fn script() -> String {
    let body = SCRIPT
        .replace("RAID_ROOT_UUID", RAID_ROOT_UUID)
        .replace("THIN_XFS_UUID", THIN_XFS_UUID)
        .replace("LUKS_UUID", LUKS_UUID)
        .replace("HOME_BTRFS_UUID", HOME_BTRFS_UUID)
        .replace("SWAP_UUID", SWAP_UUID);
    format!("set -euo pipefail\nexec 2>&1\nLUKS_ID={LUKS_UUID}\n{STACK}\n{body}")
}

#[test]
fn raid_lvm_thin_luks_and_esp_are_captured_in_a_vm() {
    let Some(h) = Harness::for_tests() else { return };
    let share = tempfile::tempdir().expect("tmp");
    let mut spec = Spec::new("layout-storage-stacks", &script());
    spec.disks = vec![
        Disk::blank("raid-a", 512 * MIB),
        Disk::blank("raid-b", 512 * MIB),
        Disk::blank("crypt", 512 * MIB),
        Disk::blank("boot", 256 * MIB),
    ];
    spec.files = vec![(env!("CARGO_BIN_EXE_lifeboat").into(), "/usr/local/bin/lifeboat".into())];
    spec.share = Some(share.path().to_path_buf());
    let out = h.run(&spec).expect("vm");
    let log = out.log();
    assert_eq!(out.status, 0, "{log}");
    let l = Layout::load(&share.path().join("layout.toml")).expect("layout from the guest loads on the host");
    let log =
        format!("{log}\nlayout:\n{}", std::fs::read_to_string(share.path().join("layout.toml")).unwrap_or_default());

    // Disks with their serials, none excluded.
    let serials: Vec<(&str, Option<&str>)> = l.disks.iter().map(|d| (d.id.as_str(), d.serial.as_deref())).collect();
    assert_eq!(
        serials,
        vec![
            ("/dev/vda", Some("raid-a")),
            ("/dev/vdb", Some("raid-b")),
            ("/dev/vdc", Some("crypt")),
            ("/dev/vdd", Some("boot"))
        ],
        "{log}"
    );
    assert!(l.disks.iter().all(|d| d.excluded.is_none() && d.transport.as_deref() == Some("virtio")));

    // md RAID1 with its members, UUID, name and bitmap.
    let md_uuid = out.output.lines().find_map(|x| x.strip_prefix("MD_UUID=")).expect("MD_UUID printed");
    assert_eq!(l.raids.len(), 1, "{log}");
    let r = &l.raids[0];
    assert_eq!((r.id.as_str(), r.level.as_str(), r.metadata.as_str()), ("/dev/md0", "raid1", "1.2"));
    assert_eq!(r.uuid, md_uuid);
    assert_eq!(r.name.as_deref(), Some("lbtest:0"));
    assert_eq!(r.members, vec!["/dev/vda1", "/dev/vdb1"]);
    assert_eq!(r.bitmap.as_deref(), Some("internal"));
    assert_eq!(r.raid_devices, 2);
    assert!(r.size > 390 * MIB && r.size < 400 * MIB, "{}", r.size);

    // LVM on RAID with a thin pool; LVM on LUKS.
    let pv = |dev: &str| l.lvm.pvs.iter().find(|p| p.device == dev).unwrap_or_else(|| panic!("PV {dev}: {log}"));
    assert_eq!(pv("/dev/md0").vg.as_deref(), Some("vgraid"));
    assert_eq!(pv("/dev/mapper/cryptpv").vg.as_deref(), Some("vgcrypt"));
    let vg = l.lvm.vgs.iter().find(|v| v.name == "vgraid").expect("vgraid");
    assert_eq!(vg.extent_size, 4 * MIB);
    assert_eq!(vg.depends_on, vec!["pv:/dev/md0"]);
    let lv = |name: &str| l.lvm.lvs.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("LV {name}: {log}"));
    assert_eq!(lv("root").size, 100 * MIB);
    assert_eq!(lv("root").segments[0].segtype, "linear");
    assert_eq!(lv("pool").segments[0].segtype, "thin-pool");
    assert_eq!(lv("pool").size, 120 * MIB);
    assert!(lv("pool").metadata_size.is_some() && lv("pool").chunk_size.is_some());
    assert_eq!(lv("thin1").segments[0].segtype, "thin");
    assert_eq!(lv("thin1").pool.as_deref(), Some("pool"));
    assert_eq!(lv("thin1").size, 300 * MIB);
    assert!(lv("pool_tdata").hidden && lv("pool_tmeta").hidden);
    assert!(lv("thin1").depends_on.contains(&lv("pool").id), "{:?}", lv("thin1").depends_on);
    assert_eq!(lv("home").id, "/dev/mapper/vgcrypt-home");

    // LUKS2 header parameters, never keys.
    assert_eq!(l.luks.len(), 1);
    let x = &l.luks[0];
    assert_eq!((x.device.as_str(), x.version, x.uuid.as_str()), ("/dev/vdc", 2, LUKS_UUID));
    assert_eq!(
        (x.label.as_deref(), x.name.as_deref(), x.id.as_deref()),
        (Some("cryptlabel"), Some("cryptpv"), Some("/dev/mapper/cryptpv"))
    );
    assert_eq!((x.cipher.as_str(), x.key_size, x.pbkdf.as_deref()), ("aes-xts-plain64", 512, Some("pbkdf2")));
    assert_eq!(x.hash.as_deref(), Some("sha256"));
    let saved = std::fs::read_to_string(share.path().join("layout.toml")).expect("read");
    assert!(!saved.contains("test passphrase"));

    // Filesystems on all of it.
    let fs = |dev: &str| l.filesystem_on(dev).unwrap_or_else(|| panic!("filesystem on {dev}: {log}"));
    assert_eq!(
        (fs("/dev/mapper/vgraid-root").uuid.as_deref(), fs("/dev/mapper/vgraid-root").label.as_deref()),
        (Some(RAID_ROOT_UUID), Some("raidroot"))
    );
    assert_eq!(fs("/dev/mapper/vgraid-root").mountpoints, vec!["/mnt/root"]);
    assert_eq!(
        (fs("/dev/mapper/vgraid-thin1").fstype.as_str(), fs("/dev/mapper/vgraid-thin1").uuid.as_deref()),
        ("xfs", Some(THIN_XFS_UUID))
    );
    let home = fs("/dev/mapper/vgcrypt-home");
    assert_eq!(
        (home.fstype.as_str(), home.uuid.as_deref(), home.label.as_deref()),
        ("btrfs", Some(HOME_BTRFS_UUID), Some("homefs"))
    );
    assert_eq!(home.subvolumes.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), vec!["@data"]);
    let esp = fs("/dev/vdd1");
    assert_eq!(
        (esp.fstype.as_str(), esp.uuid.as_deref(), esp.label.as_deref()),
        ("vfat", Some("5EED-1234"), Some("ESP"))
    );
    let sw = l.swaps.iter().find(|s| s.device == "/dev/vdd2").expect("swap");
    assert_eq!(sw.uuid.as_deref(), Some(SWAP_UUID));
    assert!(sw.active);

    // Boot: the ESP and the GRUB EFI loader on it; fstab and crypttab.
    assert_eq!(l.bootloader.esp.as_deref(), Some("/dev/vdd1"));
    assert_eq!(l.bootloader.efi_loaders, vec!["/EFI/debian/grubx64.efi"]);
    assert_eq!(l.bootloader.kind, lifeboat_layout::model::BootloaderKind::GrubEfi);
    assert_eq!(l.fstab.len(), 2);
    assert_eq!(l.crypttab[0].name, "cryptpv");

    // The whole chain is explicit: btrfs → LV → VG → PV → LUKS mapping → disk.
    let deps = l.dependencies();
    assert_eq!(deps["fs:/dev/mapper/vgcrypt-home"], vec!["/dev/mapper/vgcrypt-home"]);
    assert_eq!(deps["/dev/mapper/vgcrypt-home"], vec!["vg:vgcrypt"]);
    assert_eq!(deps["vg:vgcrypt"], vec!["pv:/dev/mapper/cryptpv"]);
    assert_eq!(deps["pv:/dev/mapper/cryptpv"], vec!["/dev/mapper/cryptpv"]);
    assert_eq!(deps["/dev/mapper/cryptpv"], vec!["/dev/vdc"]);
    assert_eq!(deps["/dev/md0"], vec!["/dev/vda1", "/dev/vdb1"]);
    let order: Vec<String> =
        lifeboat_recovery::plan::recreation_order(&l).expect("no cycle").iter().map(ToString::to_string).collect();
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap_or_else(|| panic!("{id} not in {order:?}"));
    for chain in [
        [
            "/dev/vda",
            "/dev/vda1",
            "/dev/md0",
            "pv:/dev/md0",
            "vg:vgraid",
            "/dev/mapper/vgraid-root",
            "fs:/dev/mapper/vgraid-root",
        ],
        [
            "/dev/vdc",
            "/dev/mapper/cryptpv",
            "pv:/dev/mapper/cryptpv",
            "vg:vgcrypt",
            "/dev/mapper/vgcrypt-home",
            "fs:/dev/mapper/vgcrypt-home",
            "fs:/dev/mapper/vgcrypt-home",
        ],
    ] {
        for w in chain.windows(2) {
            assert!(pos(w[0]) <= pos(w[1]), "{} must come before {} in {order:?}", w[0], w[1]);
        }
    }
    assert!(pos(&lv("pool").id) < pos(&lv("thin1").id));

    // The tree shows the stack; diff is quiet when nothing changed and names a new LV.
    let shown = std::fs::read_to_string(share.path().join("show.txt")).expect("show");
    assert!(shown.contains("/dev/md0  raid1"), "{shown}");
    assert!(shown.contains("LV vgcrypt/home"), "{shown}");
    assert!(out.output.contains("diff_unchanged_rc=0"), "{log}");
    assert!(out.output.contains("diff_changed_rc=1"), "{log}");
    assert!(out.output.contains("added   lvm.lv[/dev/mapper/vgcrypt-extra]"), "{log}");

    // backup --snapshot: a classic snapshot of the ext4 LV and a thin one of the xfs LV, read
    // mounted read-only, removed after; a stale one removed first; no room refused naming the VG.
    let o = &out.output;
    assert!(o.contains("removed the LVM snapshot vgraid/root-lifeboat-snap, left by an interrupted"), "{log}");
    assert!(o.contains("LVM snapshot vgraid/root-lifeboat-snap (12.0 MiB)"), "10% of 100 MiB in 4 MiB extents: {log}");
    assert!(o.contains("LVM thin snapshot vgraid/thin1-lifeboat-snap"), "{log}");
    assert!(o.contains("snap_backup_rc=0"), "{log}");
    assert!(o.contains("snap_left=0") && o.contains("snap_mounts=0"), "the snapshots are removed: {log}");
    assert!(o.contains("snap_diff_rc=0"), "the restored files are the snapshotted ones: {log}");
    assert!(o.contains("no room for the snapshots of vgraid/root in volume group vgraid"), "{log}");
    assert!(o.contains("snap_noroom_rc=2") && o.contains("snap_left_after_refusal=0"), "{log}");
}

/// Regenerates the parser fixtures in crates/layout/tests/fixtures from the
/// real tools in the guest: `cargo test -p lifeboat --test layout_vm -- --ignored`.
#[test]
#[ignore = "writes fixtures into the source tree; run by hand when tools change"]
fn regenerate_parser_fixtures() {
    let Some(h) = Harness::for_tests() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../layout/tests/fixtures");
    let mut spec = Spec::new(
        "parser-fixtures",
        r#"set -euo pipefail
exec 2>&1
mdadm --create /dev/md0 --run --level=5 --raid-devices=3 --chunk=256 --metadata=1.2 --name=fx:5 --assume-clean /dev/vda /dev/vdb /dev/vdc >/dev/null 2>&1
mdadm --detail /dev/md0 > /out/mdadm-detail-raid5.txt
printf 'label: gpt\nsize=100M, type=R, name=raid\n' | sfdisk --quiet /dev/vdh
printf 'label: gpt\nsize=100M, type=R, name=raid\n' | sfdisk --quiet /dev/vdi
mdadm --create /dev/md1 --run --level=1 --raid-devices=2 --metadata=1.2 --bitmap=internal --name=lbtest:0 --assume-clean /dev/vdh1 /dev/vdi1 >/dev/null 2>&1
mdadm --detail /dev/md1 > /out/mdadm-detail-raid1.txt
printf 'pw' > /tmp/key
cryptsetup luksFormat -q --type luks1 --iter-time 10 --key-file /tmp/key /dev/vdd
cryptsetup luksDump /dev/vdd > /out/luks1-dump.txt
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --label fx --key-file /tmp/key /dev/vde
cryptsetup luksDump /dev/vde > /out/luks2-dump.txt
pvcreate -q /dev/md0 /dev/vdg && vgcreate -q vgfx /dev/md0 /dev/vdg
lvcreate -q -y -i 2 -I 64k -L 40M -n striped vgfx
lvcreate -q -y --type thin-pool -L 40M -n pool vgfx && lvcreate -q -y -V 80M -T vgfx/pool -n thin
lvm pvs --reportformat json --units b --nosuffix -o pv_name,pv_uuid,vg_name,pv_size,pe_start > /out/pvs.json
lvm vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_extent_size,vg_size,vg_free > /out/vgs.json
lvm lvs -a --segments --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_uuid,lv_size,lv_attr,pool_lv,data_lv,metadata_lv,lv_metadata_size,chunk_size,origin,lv_dm_path,segtype,stripes,stripe_size,seg_size,devices > /out/lvs.json
printf 'label: gpt\nsize=8M, type=U\n' | sfdisk --quiet /dev/vdf
sfdisk --json /dev/vdf > /out/sfdisk-gpt.json
lsblk --json --bytes --output NAME,KNAME,PATH,TYPE,SIZE,LOG-SEC,PHY-SEC,MODEL,SERIAL,WWN,TRAN,RM,RO,ROTA,PTTYPE,FSTYPE,FSVER,UUID,LABEL,PARTUUID,PARTTYPE,PARTLABEL,FSUSED,FSSIZE,MOUNTPOINTS > /out/lsblk.json
"#,
    );
    spec.disks = (0..9).map(|i| Disk::blank(&format!("fx{i}"), 128 * MIB)).collect();
    spec.share = Some(dir.clone());
    let out = h.run(&spec).expect("vm");
    assert_eq!(out.status, 0, "{}", out.output);
}
