//! A real S3 store for tests: Garage nodes on 127.0.0.1 (random ports),
//! each with its own config, metadata and data directories in a temporary
//! directory, a bucket and a key. The binary is the one `tests/garage.sh`
//! builds and caches (`make test-deps`); without it the tests print SKIP.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every cluster has.
pub const BUCKET: &str = "lifeboat";
/// The key imported into every cluster (Garage's format: GK + 24 hex digits, a 64-hex-digit secret).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The region Garage signs for.
pub const REGION: &str = "garage";

/// The cached Garage binary, or None (after printing SKIP) when it was not built.
pub fn binary(test: &str) -> Option<PathBuf> {
    let p = std::env::var_os("LIFEBOAT_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/lifeboat-garage/bin/garage"));
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIP {test}: no Garage binary at {} (run tests/garage.sh or make test-deps)", p.display());
        None
    }
}

/// A free port on 127.0.0.1 (free when asked; Garage binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One Garage node.
#[derive(Debug)]
pub struct Node {
    pub config: PathBuf,
    pub s3_port: u16,
    pub rpc_port: u16,
    child: Option<Child>,
}

impl Node {
    /// Stop the node now (SIGKILL: as a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Garage cluster with a bucket and a key.
#[derive(Debug)]
pub struct Garage {
    pub bin: PathBuf,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
}

impl Garage {
    /// Start `n` nodes with replication factor `n`, connect them, apply a
    /// layout, create the bucket and the key.
    pub fn start(bin: &Path, n: usize) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let secret = "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796";
        let mut nodes = Vec::new();
        for i in 0..n {
            let d = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(d.join("meta")).unwrap();
            std::fs::create_dir_all(d.join("data")).unwrap();
            let (s3_port, rpc_port) = (free_port(), free_port());
            let config = d.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\n\
                     replication_factor = {n}\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                     rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"{REGION}\"\n\
                     api_bind_addr = \"127.0.0.1:{s3_port}\"\n",
                    meta = d.join("meta").display(),
                    data = d.join("data").display(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join("garage.log")).unwrap();
            let child = Command::new(bin)
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "garage=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            nodes.push(Node { config, s3_port, rpc_port, child: Some(child) });
        }
        let g = Garage { bin: bin.to_path_buf(), nodes, dir };
        let ids: Vec<String> = (0..n).map(|i| g.wait_for_id(i)).collect();
        for id in &ids[1..] {
            g.cli(0, &["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap();
            g.cli(0, &["layout", "assign", "-z", &format!("dc{i}"), "-c", "1G", short]);
        }
        g.cli(0, &["layout", "apply", "--version", "1"]);
        g.cli(0, &["bucket", "create", BUCKET]);
        g.cli(0, &["key", "import", "--yes", "-n", "lifeboat", KEY_ID, SECRET]);
        g.cli(0, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "lifeboat"]);
        g.wait_for_s3();
        g
    }

    /// Run the garage CLI against node `i`; its stdout (panics with its output on failure).
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(&self.bin).arg("-c").arg(&self.nodes[i].config).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "garage {args:?}: {}\n{}\nlog: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log(i)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A node's log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{i}/garage.log"))).unwrap_or_default()
    }

    /// The node's `ID@ADDR`, once it answers over RPC.
    fn wait_for_id(&self, i: usize) -> String {
        let start = Instant::now();
        loop {
            // `node id` reads the key file, which exists before the RPC port listens: `status` asks the node.
            let garage =
                |args: &[&str]| Command::new(&self.bin).arg("-c").arg(&self.nodes[i].config).args(args).output();
            if garage(&["status"]).is_ok_and(|o| o.status.success()) {
                if let Ok(o) = garage(&["node", "id", "-q"]) {
                    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                    if o.status.success() && s.contains('@') {
                        return s;
                    }
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "garage node {i} did not start: {}", self.log(i));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until every node's S3 API accepts connections.
    fn wait_for_s3(&self) {
        let start = Instant::now();
        for n in &self.nodes {
            while std::net::TcpStream::connect(("127.0.0.1", n.s3_port)).is_err() {
                assert!(start.elapsed() < Duration::from_secs(30), "garage's S3 API did not come up");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The S3 endpoint of node `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// Settings that reach node `i` with the cluster's key.
    pub fn settings(&self, i: usize) -> lifeboat_archive::target::S3Settings {
        lifeboat_archive::target::S3Settings {
            endpoint: self.endpoint(i),
            region: REGION.into(),
            path_style: Some(true),
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            ..Default::default()
        }
    }
}
