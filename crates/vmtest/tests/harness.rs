//! The harness itself: a guest boots, sees its disks by serial, has the
//! kernel features this host lacks, and returns output, status and files.

use lifeboat_vmtest::{Disk, Harness, Spec, VmError};

#[test]
fn guest_runs_script_with_disks_and_returns_status_output_and_files() {
    let Some(h) = Harness::for_tests() else { return };
    let share = tempfile::tempdir().expect("tmp");
    let mut spec = Spec::new(
        "harness-smoke",
        r#"set -e
for d in /sys/block/vd*; do echo "disk $(basename $d) $(cat $d/serial) $(cat $d/size)"; done
grep -q device-mapper /proc/misc && echo "have device-mapper"
test -e /proc/mdstat && echo "have md"
grep -qw vfat /proc/filesystems && echo "have vfat"
echo hello > /out/from-guest.txt
id -un
exit 7
"#,
    );
    spec.disks = vec![Disk::blank("alpha", 64 << 20), Disk::blank("beta", 32 << 20)];
    spec.share = Some(share.path().to_path_buf());
    let out = h.run(&spec).expect("vm run");
    assert_eq!(out.status, 7, "output:\n{}\nconsole:\n{}", out.output, out.console);
    assert!(out.output.contains("disk vda alpha 131072"), "{}", out.output);
    assert!(out.output.contains("disk vdb beta 65536"), "{}", out.output);
    for feature in ["have device-mapper", "have md", "have vfat"] {
        assert!(out.output.contains(feature), "{feature} missing:\n{}\n{}", out.output, out.console);
    }
    assert!(out.output.contains("\nroot\n"), "user names resolve in the guest: {}", out.output);
    assert_eq!(std::fs::read_to_string(share.path().join("from-guest.txt")).expect("file from guest"), "hello\n");
}

#[test]
fn a_hanging_guest_times_out_cleanly() {
    let Some(h) = Harness::for_tests() else { return };
    let mut spec = Spec::new("harness-timeout", "sleep 1000\n");
    spec.timeout = std::time::Duration::from_secs(20);
    match h.run(&spec) {
        Err(VmError::Timeout { secs, .. }) => assert_eq!(secs, 20),
        other => panic!("expected a timeout, got {other:?}"),
    }
}
