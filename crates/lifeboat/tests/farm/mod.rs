//! Deploying a farm (docs/cloning.md, "Deploying a farm"), in QEMU: the
//! golden backup of the E2E source system and the rescue system from its
//! ISO are served by `lifeboat serve` on the host's loopback; boxes with
//! blank disks boot by PXE (QEMU's DHCP and TFTP hand iPXE a script that
//! chains to the server, which each VM reaches only through one forwarded
//! address of an isolated network), restore the backup over HTTP with
//! ranged reads, each as the clone the plan gives its MAC, and report to
//! the server. One box alone first, then three at once; then every clone
//! boots from its disk with its own host name, address and machine-id.

use crate::common::{lifeboat, sh, LoopDisk};
use lifeboat_vmtest::{boot, Boot, Firmware, Media};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Where the VMs reach the deployment server: QEMU forwards this guest address to it.
const SERVER_GUEST_ADDR: &str = "10.0.2.100:80";
/// The boxes: MAC, host name, static address. The first is deployed alone, the other three at once.
const BOXES: [(&str, &str, &str); 4] = [
    ("52:54:00:fa:00:01", "web1", "10.0.2.21"),
    ("52:54:00:fa:00:02", "web2", "10.0.2.22"),
    ("52:54:00:fa:00:03", "web3", "10.0.2.23"),
    ("52:54:00:fa:00:04", "web4", "10.0.2.24"),
];
/// What each clone prints once it is up (instead of the E2E step script's line).
const BOOTED_SCRIPT: &str = r#"#!/bin/sh
for i in $(seq 60); do ip -4 -o addr show dev eth0 2>/dev/null | grep -q inet && break; sleep 1; done
addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n 1)
echo "FARM-BOOTED host=$(hostname) addr=$addr mid=$(cat /etc/machine-id) multi-user=$(systemctl is-active multi-user.target) FARM-END"
"#;

/// The deployment server, stopped when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The network of a box: isolated, the server forwarded, and (for the first boot) PXE.
fn farm_box(name: &str, mac: &str, port: u16, tftp: Option<&Path>, disk: &Path) -> Boot {
    let mut b = Boot::new(name, Firmware::Bios);
    b.restrict_net = true;
    // A host connection per guest connection (the server closes each after one answer).
    b.guest_commands = vec![(SERVER_GUEST_ADDR.into(), format!("busybox nc 127.0.0.1 {port}"))];
    b.mac = Some(mac.into());
    b.tftp = tftp.map(|d| (d.to_path_buf(), "boot.ipxe".into()));
    b.memory_mib = 1536;
    b.media = vec![Media::Disk { image: disk.to_path_buf(), serial: "system".into(), read_only: false }];
    b
}

/// Deploy boxes at once by PXE; the seconds until the last one powered off.
fn deploy_at_once(w: &Path, boxes: &[(&str, &str, &str)], port: u16, tftp: &Path) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        let runs: Vec<_> = boxes
            .iter()
            .map(|(mac, host, _)| {
                let disk = w.join(format!("farm-{host}.img"));
                sh(&format!("truncate -s 3G {}", disk.display()));
                s.spawn(move || {
                    let mut c = boot(&farm_box(&format!("farm {host} (pxe)"), mac, port, Some(tftp), &disk))
                        .expect("boot by PXE");
                    let end = c.expect("lifeboat: recovery ", Duration::from_secs(2400));
                    let tr = c.transcript();
                    let ok = end.as_ref().is_ok_and(|e| tr[*e..].starts_with("succeeded"));
                    assert!(ok, "{host}: the deployment failed:\n{}", &tr[tr.len().saturating_sub(6000)..]);
                    // Its own iPXE script from the server (iPXE's own output goes to the screen,
                    // not the serial port): the kernel's command line names its clone file.
                    let own = format!("lifeboat.clone=http://{SERVER_GUEST_ADDR}/clone/{mac}");
                    assert!(tr.contains(&own), "{host}: booted with its own iPXE script ({own})");
                    c.wait_poweroff(Duration::from_secs(180)).expect("the box powers off (lifeboat.done=poweroff)");
                })
            })
            .collect();
        for r in runs {
            if let Err(e) = r.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
    t.elapsed().as_secs_f64()
}

/// The first partition of a disk image's /etc files (BIOS: the root filesystem is partition 1).
fn read_etc(img: &Path, work: &Path, files: &[&str]) -> Vec<String> {
    let mut d = LoopDisk::attach(img, true);
    let m = work.join(format!("etc-{}", img.file_stem().and_then(|s| s.to_str()).unwrap_or("x")));
    d.mount(&d.part(1), &m, "ro");
    files.iter().map(|f| std::fs::read_to_string(m.join(f)).unwrap_or_default()).collect()
}

/// The whole farm round trip after the source made its backup and ISO.
pub fn deploy(w: &Path, iso: &Path, backup_dir: &Path, src: &Path, times: &mut Vec<(String, f64)>) {
    // The rescue system's network boot files, from the source's ISO (the host has no iso9660).
    let pxe = w.join("farm/pxe");
    let tftp = w.join("farm/tftp");
    std::fs::create_dir_all(&pxe).expect("mkdir");
    std::fs::create_dir_all(&tftp).expect("mkdir");
    for f in ["vmlinuz", "initrd.img"] {
        sh(&format!(
            "xorriso -osirrox on -indev {} -extract /boot/{f} {}/{f} >/dev/null 2>&1",
            iso.display(),
            pxe.display()
        ));
    }
    // What a site's dnsmasq would offer over TFTP: a script that chains to the server.
    std::fs::write(tftp.join("boot.ipxe"), format!("#!ipxe\nchain http://{SERVER_GUEST_ADDR}/boot.ipxe\n"))
        .expect("boot.ipxe");
    let plan: String = BOXES
        .iter()
        .map(|(mac, host, addr)| {
            format!(
                "[[client]]\nmac = \"{mac}\"\nhostname = \"{host}\"\n[[client.interface]]\nmatch = \"name:eth0\"\naddress = \"{addr}/24\"\ngateway = \"10.0.2.2\"\n\n"
            )
        })
        .collect();
    let plan_file = w.join("farm/plan.toml");
    std::fs::write(&plan_file, plan).expect("plan");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let state = w.join("farm/serve-state.json");
    let _ = std::fs::remove_file(&state);
    let serve = || {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(w.join("farm/serve.log")).expect("log");
        let server = Serve(
            lifeboat()
                .args(["-v", "serve", "--dir"])
                .arg(&pxe)
                .arg("--backup")
                .arg(backup_dir)
                .arg("--plan")
                .arg(&plan_file)
                .arg("--state")
                .arg(&state)
                .args(["--listen", &format!("127.0.0.1:{port}"), "--url", &format!("http://{SERVER_GUEST_ADDR}")])
                .args(["--kernel-args", "console=ttyS0,115200n8 panic=-1", "--done", "poweroff"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start lifeboat serve"),
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    };
    let server = serve();

    // One box alone, then three at once.
    let one = deploy_at_once(w, &BOXES[..1], port, &tftp);
    times.push(("farm: one box alone (PXE, rescue boot, recovery over HTTP)".into(), one));
    let three = deploy_at_once(w, &BOXES[1..], port, &tftp);
    times.push(("farm: three boxes at once".into(), three));

    let out = lifeboat().args(["--json", "serve", "--status", "--url", &url]).output().expect("serve --status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert!(out.status.success(), "serve --status: every box done: {status}");
    let clients = status["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), BOXES.len(), "{status}");
    for ((mac, host, _), c) in BOXES.iter().zip(clients) {
        assert_eq!(
            (c["id"].as_str(), c["hostname"].as_str(), c["phase"].as_str()),
            (Some(*mac), Some(*host), Some("done"))
        );
    }
    let sent = status["backup_bytes_sent"].as_u64().unwrap_or(0);
    let size: u64 = std::fs::read_dir(backup_dir)
        .expect("backup")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(sent >= size * BOXES.len() as u64 * 9 / 10, "each box read the whole backup: {sent} of {size} bytes each");
    times.push((
        format!(
            "farm: backup {} MB; aggregate {:.1} MB/s with three at once, {:.1} MB/s alone",
            size / 1_000_000,
            3.0 * size as f64 / 1e6 / three,
            size as f64 / 1e6 / one
        ),
        0.0,
    ));
    eprint!("{}", sh(&format!("{} serve --status --url {url}", lifeboat().get_program().to_string_lossy())));

    // The deployment host restarts: the server reads its state back and does not deploy a done box again.
    drop(server);
    let _server = serve();
    let out = lifeboat().args(["--json", "serve", "--status", "--url", &url]).output().expect("serve --status");
    assert!(out.status.success(), "after a restart every box is still done: {}", String::from_utf8_lossy(&out.stdout));
    for (mac, host, _) in BOXES {
        let out = lifeboat().args(["serve", "--fetch", &format!("{url}/ipxe/{mac}/")]).output().expect("fetch");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("deployed already") && !script.contains("kernel "), "{host} after a restart: {script}");
    }

    // Each clone's identity on its disk, against the source's and each other's.
    let files = ["etc/hostname", "etc/machine-id", "etc/systemd/network/50-e2e.network", "etc/hosts"];
    let source = read_etc(src, w, &files);
    let mut ids = std::collections::BTreeSet::new();
    for (_, host, addr) in BOXES {
        let disk = w.join(format!("farm-{host}.img"));
        let got = read_etc(&disk, w, &files);
        assert_eq!(got[0].trim(), host, "{host}: /etc/hostname");
        // An empty machine-id stays empty (systemd makes one at the first boot, checked below).
        if !source[1].trim().is_empty() {
            assert!(got[1].trim().len() == 32 && got[1] != source[1], "{host}: a new machine-id: {:?}", got[1]);
            assert!(ids.insert(got[1].clone()), "{host}: a machine-id of its own");
        }
        assert!(got[2].contains(&format!("Address={addr}/24")) && !got[2].contains("DHCP=yes"), "{host}: {}", got[2]);
        assert!(got[3].contains(host) && !got[3].contains("source"), "{host}: /etc/hosts:\n{}", got[3]);
        // The test's own marker line when the clone is up (the E2E step script prints the source's checks).
        let mut d = LoopDisk::attach(&disk, false);
        let m = w.join(format!("mark-{host}"));
        d.mount(&d.part(1), &m, "");
        std::fs::write(m.join("etc/lifeboat-e2e.sh"), BOOTED_SCRIPT).expect("marker script");
    }

    // Every clone boots from its disk (the server answers `exit` to a box that is done) as itself.
    let t = Instant::now();
    let lines: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = BOXES
            .iter()
            .map(|(mac, host, _)| {
                let disk: PathBuf = w.join(format!("farm-{host}.img"));
                s.spawn(move || {
                    let mut c = boot(&farm_box(&format!("farm {host} (disk)"), mac, port, None, &disk)).expect("boot");
                    let at = c.expect("FARM-BOOTED", Duration::from_secs(900)).expect("the clone boots");
                    c.expect_from(at, "FARM-END", Duration::from_secs(60)).expect("marker line");
                    c.transcript()[at..].lines().next().unwrap_or_default().to_string()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    times.push(("farm: four clones boot from their disks at once".into(), t.elapsed().as_secs_f64()));
    let mut mids = std::collections::BTreeSet::new();
    for ((_, host, addr), line) in BOXES.iter().zip(&lines) {
        times.push((format!("farm: {line}"), 0.0));
        assert!(line.contains(&format!("host={host} ")), "{host}: {line}");
        assert!(line.contains(&format!("addr={addr}/24 ")), "{host}: its static address: {line}");
        assert!(line.contains("multi-user=active"), "{host}: reaches multi-user: {line}");
        let mid = line.split("mid=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or_default();
        assert!(mid.len() == 32 && mid != source[1].trim() && mids.insert(mid.to_string()), "{host}: {line}");
    }
}
