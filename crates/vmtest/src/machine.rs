//! Booting real media (ISO, disk images, kernel + initramfs) in QEMU and
//! talking to them over the serial console, as an administrator would over
//! IPMI serial-over-LAN.

use crate::{ensure_packages, io, tail, VmError};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which firmware the machine starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS.
    Bios,
    /// OVMF (UEFI).
    Uefi,
    /// OVMF with Secure Boot on and Microsoft's keys enrolled (what a
    /// typical server ships with): only signed boot loaders run.
    UefiSecureBoot,
}

/// Something attached to the machine.
#[derive(Debug, Clone)]
pub enum Media {
    /// An optical drive holding this ISO (boots first when it is the first medium).
    Cdrom(PathBuf),
    /// A virtio disk backed by an image file.
    Disk {
        /// The image.
        image: PathBuf,
        /// Serial the guest sees.
        serial: String,
        /// Attach read-only.
        read_only: bool,
    },
    /// A USB stick backed by an image file (usb-storage on an XHCI controller).
    Usb(PathBuf),
    /// An NVMe disk backed by an image file (the guest sees /dev/nvme0n1).
    Nvme {
        /// The image.
        image: PathBuf,
        /// Serial the guest sees.
        serial: String,
    },
}

/// How to start a machine.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Name for errors.
    pub name: String,
    /// Firmware.
    pub firmware: Firmware,
    /// Media in boot order (the first one is booted).
    pub media: Vec<Media>,
    /// Boot this kernel directly: (kernel, initramfs, command line), as PXE would.
    pub direct: Option<(PathBuf, PathBuf, String)>,
    /// A virtio network card on QEMU's user network (DHCP server at 10.0.2.2).
    pub nic: bool,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Other hardware than the defaults: a q35 machine, disks on AHCI (SATA)
    /// and an Intel e1000e network card instead of virtio.
    pub other_hardware: bool,
    /// Forward this host port (on 127.0.0.1) to the guest's port 22.
    pub ssh_port: Option<u16>,
    /// The user network reaches nothing but these forwards (QEMU's `restrict=on`):
    /// no route to the host or beyond, DHCP still answers.
    pub isolated: bool,
    /// Guest address:port → host port on 127.0.0.1 (QEMU's `guestfwd`): a
    /// server of the host that the guest reaches at that address, e.g.
    /// `("10.0.2.100:80", 3900)`.
    pub guest_forwards: Vec<(String, u16)>,
}

impl Boot {
    /// A BIOS machine with 2 GiB, a NIC, and nothing attached.
    pub fn new(name: &str, firmware: Firmware) -> Boot {
        Boot {
            name: name.into(),
            firmware,
            media: Vec::new(),
            direct: None,
            nic: true,
            memory_mib: 2048,
            other_hardware: false,
            ssh_port: None,
            isolated: false,
            guest_forwards: Vec::new(),
        }
    }
}

/// A running machine: its serial console, readable and writable.
#[derive(Debug)]
pub struct Console {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Vec<u8>>>,
    started: Instant,
    vars: Option<PathBuf>,
}

/// Where OVMF lives on Debian.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// OVMF built with Secure Boot support (needs q35 with SMM).
pub const OVMF_SECBOOT_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// An OVMF variable store with Microsoft's keys enrolled and Secure Boot on.
pub const OVMF_MS_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// Start a machine.
pub fn boot(b: &Boot) -> Result<Console, VmError> {
    ensure_packages()?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-smp", "2", "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none"])
        .args(["-m", &b.memory_mib.to_string(), "-serial", "stdio"]);
    let mut vars = None;
    match b.firmware {
        Firmware::Bios => {}
        Firmware::Uefi => {
            if !std::path::Path::new(OVMF).exists() {
                return Err(VmError::Unavailable(format!("{OVMF} is missing (apt-get install ovmf)")));
            }
            cmd.args(["-bios", OVMF]);
        }
        Firmware::UefiSecureBoot => {
            for f in [OVMF_SECBOOT_CODE, OVMF_MS_VARS] {
                if !std::path::Path::new(f).exists() {
                    return Err(VmError::Unavailable(format!("{f} is missing (apt-get install ovmf)")));
                }
            }
            // The variable store is written by the firmware: give each machine its own copy.
            let copy = std::env::temp_dir().join(format!("lifeboat-ovmf-vars-{}-{}.fd", std::process::id(), b.name));
            std::fs::copy(OVMF_MS_VARS, &copy).map_err(io("cannot copy the OVMF variable store"))?;
            cmd.args(["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"])
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SECBOOT_CODE}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=1,file={}", copy.display()));
            vars = Some(copy);
        }
    }
    if b.other_hardware {
        cmd.args(["-machine", "q35", "-device", "ahci,id=sata"]);
    }
    if let Some((k, i, append)) = &b.direct {
        cmd.arg("-kernel").arg(k).arg("-initrd").arg(i).arg("-append").arg(append);
    }
    let mut usb = false;
    for (n, m) in b.media.iter().enumerate() {
        match m {
            Media::Cdrom(p) => {
                cmd.arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},media=cdrom,readonly=on", p.display()))
                    .arg("-device")
                    .arg(format!("ide-cd,drive=m{n},bootindex={}", n + 1));
            }
            Media::Disk { image, serial, read_only } => {
                let ro = if *read_only { ",readonly=on" } else { "" };
                let device = if b.other_hardware {
                    format!("ide-hd,bus=sata.{n},drive=m{n},serial={serial},bootindex={}", n + 1)
                } else {
                    format!("virtio-blk-pci,drive=m{n},serial={serial},bootindex={}", n + 1)
                };
                cmd.arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},cache=unsafe{ro}", image.display()))
                    .arg("-device")
                    .arg(device);
            }
            Media::Nvme { image, serial } => {
                cmd.arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},cache=unsafe", image.display()))
                    .arg("-device")
                    .arg(format!("nvme,drive=m{n},serial={serial},bootindex={}", n + 1));
            }
            Media::Usb(p) => {
                if !usb {
                    cmd.args(["-device", "qemu-xhci,id=xhci"]);
                    usb = true;
                }
                cmd.arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},readonly=on", p.display()))
                    .arg("-device")
                    .arg(format!("usb-storage,bus=xhci.0,drive=m{n},bootindex={}", n + 1));
            }
        }
    }
    if b.nic {
        let model = if b.other_hardware { "e1000e" } else { "virtio-net-pci" };
        let mut fwd = b.ssh_port.map(|p| format!(",hostfwd=tcp:127.0.0.1:{p}-:22")).unwrap_or_default();
        if b.isolated {
            fwd.push_str(",restrict=on");
        }
        for (guest, port) in &b.guest_forwards {
            fwd.push_str(&format!(",guestfwd=tcp:{guest}-tcp:127.0.0.1:{port}"));
        }
        cmd.args(["-nic", &format!("user,model={model}{fwd}")]);
    }
    log::debug!("boot {}: {:?}", b.name, cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("cannot start qemu-system-x86_64"))?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = seen.lock() {
                    s.extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    Ok(Console { name: b.name.clone(), stdin: child.stdin.take(), child, seen, started: Instant::now(), vars })
}

impl Console {
    /// Everything the console printed so far (carriage returns removed).
    pub fn transcript(&self) -> String {
        let s = self.seen.lock().map(|s| String::from_utf8_lossy(&s).into_owned()).unwrap_or_default();
        s.replace('\r', "")
    }

    /// Time since the machine was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Wait until `needle` has been printed after byte offset `from`; return the offset just after it.
    pub fn expect_from(&mut self, from: usize, needle: &str, timeout: Duration) -> Result<usize, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.transcript();
            if let Some(i) = t.get(from..).and_then(|rest| rest.find(needle)) {
                return Ok(from + i + needle.len());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(VmError::NoResult {
                    name: self.name.clone(),
                    status: status.to_string(),
                    output: format!("(waiting for {needle:?})"),
                    tail: tail(&t, 40),
                });
            }
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    name: format!("{} (waiting for {needle:?})", self.name),
                    secs: timeout.as_secs(),
                    tail: tail(&t, 40),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `needle` appears anywhere in the transcript.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<usize, VmError> {
        self.expect_from(0, needle, timeout)
    }

    /// Type a line on the serial console.
    pub fn send_line(&mut self, line: &str) -> Result<(), VmError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| VmError::Build("console input closed".into()))?;
        stdin.write_all(format!("{line}\n").as_bytes()).map_err(io("cannot write to the serial console"))?;
        stdin.flush().map_err(io("cannot write to the serial console"))
    }

    /// Run a shell command on the console and return what it printed, using
    /// unique markers so the echo of the command line is not mistaken for output.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<String, VmError> {
        let id = self.started.elapsed().as_nanos();
        let start = self.transcript().len();
        // The markers are assembled by the shell, so the echoed command line does not contain them.
        self.send_line(&format!("echo BEGIN''{id}; {command}; echo END''{id}=$?"))?;
        let begin = self.expect_from(start, &format!("BEGIN{id}\n"), timeout)?;
        let end = self.expect_from(begin, &format!("END{id}="), timeout)?;
        let t = self.transcript();
        Ok(t[begin..end - format!("END{id}=").len()].to_string())
    }

    /// Wait for the machine to power off by itself.
    pub fn wait_poweroff(&mut self, timeout: Duration) -> Result<(), VmError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().map_err(io("waiting for qemu"))?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(VmError::Timeout {
            name: format!("{} (waiting for power-off)", self.name),
            secs: timeout.as_secs(),
            tail: tail(&self.transcript(), 30),
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(v) = &self.vars {
            let _ = std::fs::remove_file(v);
        }
    }
}
