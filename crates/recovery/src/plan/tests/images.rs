//! Foreign partitions in the plan: kept at their size, written back after
//! the partition tables, refused when the image does not fit, a note when
//! the backup has no image.

use super::*;
use lifeboat_layout::model::{Image, ImageKind};

const MS_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

/// [`gpt_host`] with an NTFS partition (200 MiB) and a raw one (32 MiB) after swap.
fn dual_boot() -> Layout {
    let mut l = gpt_host();
    if let Some(t) = l.disks[0].table.as_mut() {
        t.partitions.push(part("/dev/sda", 4, 1771520, 409600, MS_DATA));
        t.partitions.push(part("/dev/sda", 5, 2181120, 65536, "6A945A3B-1DD2-11B2-99A6-080020736631"));
    }
    l.disks[0].size = 2 * GIB;
    let image = |device: &str, kind, size, fstype: Option<&str>| Image {
        device: device.into(),
        kind,
        size,
        fstype: fstype.map(String::from),
        uuid: None,
        label: None,
    };
    l.images.push(image("/dev/sda4", ImageKind::Ntfs, 409600 * 512, Some("ntfs")));
    l.images.push(image("/dev/sda5", ImageKind::Raw, 65536 * 512, None));
    l
}

fn image_steps(p: &Plan) -> Vec<(String, String, u64, u64)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteImage { device, entry, needs, partition, .. } => {
                Some((device.clone(), entry.clone(), *needs, *partition))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn foreign_partitions_keep_their_size_on_a_larger_disk_and_get_a_step_each() {
    let l = dual_boot();
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", 4 * GIB)], &settings()).expect("plan");
    let Some(Action::Partition { partitions, .. }) = p.actions.first() else { panic!("{:?}", kinds(&p)) };
    let size_of = |n: u32| partitions.iter().find(|x| x.number == n).map(|x| x.size);
    assert_eq!((size_of(4), size_of(5)), (Some(409600), Some(65536)), "kept: {partitions:?}");
    assert!(size_of(2).is_some_and(|s| s > 1433600), "the root grows: {partitions:?}");
    assert!(partitions.iter().any(|x| x.what == "ntfs (ntfs image)"), "{partitions:?}");
    let mut asked = Vec::new();
    p.add_images(&l, &mut |entry, kind| {
        asked.push((entry.to_string(), kind));
        Some(Ok(if kind == ImageKind::Ntfs { 409600 * 512 } else { 3 * MIB }))
    })
    .expect("images fit");
    let want = [(".lifeboat/images/sda4.img", ImageKind::Ntfs), (".lifeboat/images/sda5.img", ImageKind::Raw)];
    assert_eq!(asked, want.map(|(e, k)| (e.to_string(), k)));
    assert_eq!(
        image_steps(&p),
        [
            ("/dev/vdb4".to_string(), ".lifeboat/images/sda4.img".to_string(), 409600 * 512, 409600 * 512),
            ("/dev/vdb5".to_string(), ".lifeboat/images/sda5.img".to_string(), 3 * MIB, 65536 * 512),
        ]
    );
    let step = p.actions.iter().find(|a| matches!(a, Action::WriteImage { .. })).expect("step");
    assert_eq!(step.phase(), Phase::Restore);
    assert_eq!(step.describe(), "write the ntfs image onto /dev/vdb4");
    let text = step.render(4);
    assert!(
        text.contains("ntfsclone --quiet --restore-image --overwrite /dev/vdb4 -") && text.contains("of /dev/sda4"),
        "{text}"
    );
    p.finish(&l, &settings(), Some(("/b/1".into(), 10, 100)));
    let order = kinds(&p);
    let at = |prefix: &str| order.iter().position(|k| k.starts_with(prefix)).unwrap_or(usize::MAX);
    assert!(at("partition") < at("write the ntfs image") && at("write the raw image") < at("restore"), "{order:?}");
}

#[test]
fn an_image_larger_than_its_partition_is_refused_before_anything_is_written() {
    let l = dual_boot();
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", 4 * GIB)], &settings()).expect("plan");
    let e = p
        .add_images(&l, &mut |_, kind| Some(Ok(if kind == ImageKind::Ntfs { 300 * MIB } else { MIB })))
        .expect_err("an NTFS volume of 300 MiB on 200 MiB")
        .to_string();
    assert!(e.contains("/dev/sda4") && e.contains("/dev/vdb4") && e.contains("nothing was written"), "{e}");
    let e = p.add_images(&l, &mut |_, _| Some(Err("damaged".into()))).expect_err("unreadable").to_string();
    assert!(e.contains(".lifeboat/images/sda4.img") && e.contains("damaged"), "{e}");
}

#[test]
fn without_an_image_in_the_backup_the_partition_is_left_empty_and_the_plan_says_so() {
    let l = dual_boot();
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", 2 * GIB)], &settings()).expect("plan");
    p.add_images(&l, &mut |entry, _| entry.ends_with("sda5.img").then_some(Ok(MIB))).expect("plan");
    assert_eq!(image_steps(&p).len(), 1);
    assert!(p.notes.iter().any(|n| n.contains("/dev/vdb4") && n.contains("recreated empty")), "{:?}", p.notes);
    // A disk that is not recreated gets no step.
    let mut q = build(&gpt_host(), vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    q.add_images(&l, &mut |_, _| Some(Ok(MIB))).expect("plan");
    assert!(image_steps(&q).is_empty());
}
