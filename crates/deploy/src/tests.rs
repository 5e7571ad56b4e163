//! The server over real sockets on loopback: routes, confinement, hostile requests, the http:// target against it.

use crate::plan::ClonePlan;
use crate::server::{Config, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

const PLAN: &str = r#"
[[client]]
mac = "52:54:00:00:10:01"
hostname = "web1"
[[client.interface]]
match = "order:1"
address = "10.0.2.21/24"

[[client]]
serial = "SN2"
hostname = "web2"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    server: Arc<Server>,
}

fn start() -> Fixture {
    start_with(None)
}

/// A served directory, a golden backup (and a file outside both) in `dir`, and the server's configuration.
fn config_in(dir: &std::path::Path, state: Option<std::path::PathBuf>) -> Config {
    let pxe = dir.join("pxe");
    let backup = dir.join("backup");
    std::fs::create_dir_all(&pxe).expect("pxe");
    std::fs::create_dir_all(&backup).expect("backup");
    std::fs::write(pxe.join("vmlinuz"), b"kernel").expect("kernel");
    std::fs::write(pxe.join("initrd.img"), b"initrd").expect("initrd");
    std::fs::write(backup.join("backup.json"), b"{\"catalog\": true}").expect("catalog");
    let volume: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(backup.join("vol-0001.tar.zst"), &volume).expect("volume");
    std::fs::write(dir.join("secret"), b"outside").expect("secret");
    std::os::unix::fs::symlink(dir.join("secret"), backup.join("link")).expect("link");
    Config {
        dir: pxe,
        backup,
        plan: ClonePlan::parse(PLAN).expect("plan"),
        url: "http://10.0.2.100".into(),
        kernel_args: "console=ttyS0,115200".into(),
        done: "poweroff".into(),
        max_per_peer: crate::server::MAX_PER_PEER,
        state,
    }
}

fn start_with(state: Option<std::path::PathBuf>) -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_in(dir.path(), state);
    let server = Arc::new(Server::bind("127.0.0.1:0", config).expect("bind"));
    let url = format!("http://{}", server.local_addr().expect("addr"));
    let s = Arc::clone(&server);
    std::thread::spawn(move || s.run());
    Fixture { _dir: dir, url, server }
}

/// Send raw bytes, return the status and the body.
fn raw(f: &Fixture, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(f.url.trim_start_matches("http://")).expect("connect");
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn get(f: &Fixture, path: &str) -> (u16, String) {
    raw(f, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

fn post(f: &Fixture, path: &str, body: &str) -> (u16, String) {
    raw(f, format!("POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
}

#[test]
fn each_box_gets_its_own_script_and_clone_file_and_unknown_boxes_boot_from_disk() {
    let f = start();
    let (s, chain) = get(&f, "/boot.ipxe");
    assert_eq!(s, 200);
    assert!(chain.starts_with("#!ipxe") && chain.contains("http://10.0.2.100/ipxe/${net0/mac}"), "{chain}");
    let (s, script) = get(&f, "/ipxe/52:54:00:00:10:01/");
    assert_eq!(s, 200);
    for want in [
        "kernel http://10.0.2.100/pxe/vmlinuz initrd=initrd.img console=ttyS0,115200 lifeboat.recover=auto",
        "lifeboat.done=poweroff",
        "lifeboat.from=http://10.0.2.100/backup",
        "lifeboat.clone=http://10.0.2.100/clone/52:54:00:00:10:01",
        "lifeboat.status=http://10.0.2.100/status/52:54:00:00:10:01",
        "initrd http://10.0.2.100/pxe/initrd.img",
    ] {
        assert!(script.contains(want), "{want} in {script}");
    }
    let (_, escaped) = get(&f, "/ipxe/52%3A54%3A00%3Afa%3A00%3A01/".replace("fa%3A00%3A01", "00%3A10%3A01").as_str());
    assert!(escaped.contains("deploying web1"), "iPXE escapes the colons: {escaped}");
    let (_, by_serial) = get(&f, "/ipxe/52:54:00:99:99:99/SN2");
    assert!(by_serial.contains("lifeboat.clone=http://10.0.2.100/clone/SN2"), "{by_serial}");
    let (s, clone) = get(&f, "/clone/52:54:00:00:10:01");
    assert_eq!(s, 200);
    assert!(clone.contains("hostname = \"web1\"") && clone.contains("10.0.2.21/24"), "{clone}");
    let (_, unknown) = get(&f, "/ipxe/52:54:00:66:66:66");
    assert!(unknown.contains("not in the clone plan") && unknown.contains("exit"), "{unknown}");
    assert_eq!(get(&f, "/clone/52:54:00:66:66:66").0, 404);
    let st = f.server.status();
    let phases: Vec<(&str, &str)> = st.clients.iter().map(|c| (c.id.as_str(), c.phase.as_str())).collect();
    assert_eq!(phases, [("52:54:00:00:10:01", "pxe"), ("SN2", "pxe"), ("52:54:00:66:66:66", "unknown")]);
}

#[test]
fn reports_move_each_client_through_its_phases_and_a_done_box_boots_from_disk() {
    let f = start();
    assert_eq!(post(&f, "/status/52-54-00-00-10-01", "recovering restoring files").0, 200);
    crate::send_report(&format!("{}/status/SN2", f.url), "booted").expect("report");
    let clone = crate::fetch_text(&format!("{}/clone/SN2", f.url)).expect("clone file");
    assert!(clone.contains("web2"), "{clone}");
    assert!(crate::fetch_text(&format!("{}/clone/nobody", f.url)).is_err());
    let st = crate::fetch_status(&f.url).expect("status");
    assert_eq!(st.clients[0].phase, "recovering");
    assert_eq!(st.clients[0].message, "restoring files");
    assert_eq!(post(&f, "/status/SN2", "failed no disk\u{1b}[2J matches").0, 200);
    assert_eq!(post(&f, "/status/52:54:00:00:10:01", "done").0, 200);
    let (_, table) = get(&f, "/status");
    assert!(
        table.contains("web1") && table.contains("done") && table.contains("1 done, 1 failed, 2 in all"),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "control characters are dropped: {table}");
    let (_, again) = get(&f, "/ipxe/52:54:00:00:10:01");
    assert!(again.contains("deployed already") && again.contains("exit"), "{again}");
    assert_eq!(post(&f, "/status/52:54:00:00:10:01", "owned").0, 400, "only known phases");
    // Done is final: nobody on the network can make a deployed box deploy (erase its disks) again.
    assert_eq!(post(&f, "/status/52:54:00:00:10:01", "failed x").0, 409);
    let (_, still) = get(&f, "/ipxe/52:54:00:00:10:01");
    assert!(still.contains("deployed already"), "{still}");
    // An unplanned box's serial is shown only when it is plain characters.
    let (_, odd) = get(&f, "/ipxe/52:54:00:77:77:77/x!y");
    assert!(odd.contains("(serial -)"), "{odd}");
    assert_eq!(post(&f, "/status/52:54:00:12:12:12", "done").0, 404, "only planned clients");
    assert_eq!(raw(&f, b"GET /status HTTP/1.1\r\nContent-Length: 5\r\n\r\nab").0, 400);
}

#[test]
fn the_http_target_reads_the_golden_backup_by_ranges_from_the_server() {
    use lifeboat_archive::target::Target;
    let f = start();
    let t = lifeboat_archive::target::http::HttpTarget::open(&format!("{}/backup", f.url)).expect("target");
    let objects = t.itself().expect("itself").expect("backup");
    assert_eq!(objects.read("backup.json", 1000).expect("catalog"), b"{\"catalog\": true}");
    let v = objects.open_volume("vol-0001.tar.zst", 1 << 30).expect("volume");
    assert_eq!(v.len(), 100_000);
    let mut buf = vec![0u8; 1000];
    v.read_at(50_000, &mut buf).expect("range");
    assert!(buf.iter().enumerate().all(|(i, b)| *b == ((50_000 + i as u32) % 251) as u8));
    assert!(objects.read("backup.json", 5).is_err(), "bounded");
    assert!(f.server.status().backup_bytes_sent >= 1000);
}

#[test]
fn nothing_outside_the_served_directories_is_ever_sent() {
    let f = start();
    for path in [
        "/backup/../secret",
        "/backup/..",
        "/backup/%2e%2e/secret",
        "/backup/link",
        "/backup/",
        "/pxe/../backup/backup.json",
        "/pxe/.hidden",
        "/backup/sub/dir",
        "/etc/passwd",
        "/../../etc/passwd",
        "//etc/passwd",
        "/clone/../../x",
    ] {
        let (s, body) = get(&f, path);
        assert!(s == 404 || s == 405, "{path}: {s} {body}");
        assert!(!body.contains("outside"), "{path}: {body}");
    }
    assert_eq!(get(&f, "/pxe/vmlinuz"), (200, "kernel".into()));
    assert_eq!(raw(&f, b"DELETE /backup/backup.json HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(raw(&f, b"PUT /backup/x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx").0, 405);
}

#[test]
fn hostile_requests_get_an_error_and_the_server_keeps_serving() {
    let f = start();
    let huge = format!("GET /status HTTP/1.1\r\nX-Fill: {}\r\n\r\n", "a".repeat(1 << 20));
    assert_eq!(raw(&f, huge.as_bytes()).0, 431);
    let r =
        |range: &str| raw(&f, format!("GET /backup/vol-0001.tar.zst HTTP/1.1\r\nRange: {range}\r\n\r\n").as_bytes());
    assert_eq!(r("bytes=100000-").0, 416);
    assert_eq!(r("bytes=18446744073709551615-18446744073709551615").0, 416);
    assert_eq!(r("bytes=99999999999999999999999999-1").0, 200, "an unreadable range is ignored");
    let (s, body) = r("bytes=99990-");
    assert_eq!((s, body.len()), (206, 10));
    assert_eq!(raw(&f, b"\x00\xff\xfe garbage\r\n\r\n").0, 400);
    assert_eq!(raw(&f, &[b'x'; 100_000]).0, 431);
    // A client that connects and says nothing does not stop the others.
    let _idle = TcpStream::connect(f.url.trim_start_matches("http://")).expect("idle");
    assert_eq!(get(&f, "/pxe/initrd.img"), (200, "initrd".into()));
}

#[test]
fn dripping_and_idle_connections_from_one_peer_do_not_starve_another_box() {
    let f = start();
    let addr = f.url.trim_start_matches("http://").to_string();
    // One hostile peer (127.0.0.1) opens more connections than it may hold and drips or says nothing.
    let mut held = Vec::new();
    for i in 0..crate::server::MAX_PER_PEER + 8 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /status HTTP/1.1\r\nX-Drip: ");
        }
        held.push(s);
    }
    // Another box (another loopback address) is served at once.
    let t = std::time::Instant::now();
    let port: u16 = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let mut other = socket_from("127.0.0.2", port);
    other.write_all(b"GET /pxe/initrd.img HTTP/1.1\r\n\r\n").expect("send");
    let mut out = Vec::new();
    other.read_to_end(&mut out).expect("read");
    assert!(String::from_utf8_lossy(&out).ends_with("initrd"), "{}", String::from_utf8_lossy(&out));
    assert!(t.elapsed() < std::time::Duration::from_secs(3), "{:?}", t.elapsed());
    // Past its limit the hostile peer is answered 503 at once.
    assert_eq!(get(&f, "/status").0, 503);
    // A dripping request is cut at the whole-request deadline, not kept while it drips.
    let mut drip = held.remove(0);
    let t = std::time::Instant::now();
    let mut answer = Vec::new();
    drip.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    loop {
        let _ = drip.write_all(b"a");
        let mut b = [0u8; 512];
        drip.set_read_timeout(Some(std::time::Duration::from_millis(500))).expect("timeout");
        match drip.read(&mut b) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&b[..n]),
            Err(_) if t.elapsed() < std::time::Duration::from_secs(30) => continue,
            Err(e) => panic!("still open after {:?}: {e}", t.elapsed()),
        }
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
}

/// A connection to the server on loopback from the source address `from` (127.0.0.0/8 is all local).
fn socket_from(from: &str, port: u16) -> TcpStream {
    let fd =
        rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::STREAM, None).expect("socket");
    let src: std::net::SocketAddrV4 = format!("{from}:0").parse().expect("src");
    rustix::net::bind_v4(&fd, &src).expect("bind the source address");
    let dst: std::net::SocketAddrV4 = format!("127.0.0.1:{port}").parse().expect("dst");
    rustix::net::connect_v4(&fd, &dst).expect("connect");
    TcpStream::from(fd)
}

#[test]
fn boxes_deployed_before_a_restart_of_the_server_boot_from_their_disks_and_are_not_deployed_again() {
    let keep = tempfile::tempdir().expect("tmp");
    let state = keep.path().join("serve-state.json");
    let first = start_with(Some(state.clone()));
    assert_eq!(post(&first, "/status/52:54:00:00:10:01", "done").0, 200);
    assert_eq!(post(&first, "/status/SN2", "recovering restoring files").0, 200);
    assert_eq!(first.server.restored_done(), 0);

    // The server is started again (a reboot of the deployment host): web1 stays deployed.
    let again = start_with(Some(state.clone()));
    assert_eq!(again.server.restored_done(), 1);
    let st = again.server.status();
    let phase = |id: &str| st.clients.iter().find(|c| c.id == id).map(|c| c.phase.clone()).expect("client");
    assert_eq!(phase("52:54:00:00:10:01"), "done");
    assert_eq!(phase("SN2"), "recovering");
    let (s, script) = get(&again, "/ipxe/52:54:00:00:10:01/");
    assert_eq!(s, 200);
    assert!(
        script.contains("deployed already") && script.contains("\nexit") && !script.contains("kernel "),
        "{script}"
    );

    // A damaged state file stops the server, naming the file and the way out, instead of deploying every box again.
    std::fs::write(&state, b"{not json").expect("damage");
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_in(dir.path(), Some(state.clone()));
    let e = Server::bind("127.0.0.1:0", config).expect_err("a damaged state file").to_string();
    assert!(e.contains("serve-state.json") && e.contains("remove it to deploy"), "{e}");
}
