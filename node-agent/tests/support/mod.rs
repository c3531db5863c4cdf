//! What the agent's integration tests share: a local origin standing in
//! for the CDN, the agent binary as a process, and waiting for the portal
//! to see what the agent did.
#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const AGENT: &str = env!("CARGO_BIN_EXE_lastmile-agent");
pub const ORIGIN_HOST: &str = "origin.test";

/// A local origin: static files with ranges, ETags and Last-Modified,
/// as a CDN serves them.
pub struct Origin {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start() -> Origin {
        let dir = tempfile::tempdir().unwrap();
        let app =
            axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir.path()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Origin {
            addr,
            dir,
            _server: server,
        }
    }

    /// A file of `len` bytes that are not all alike, so a misplaced range
    /// shows. Returns its SHA-256.
    pub fn add(&self, name: &str, len: usize) -> String {
        let mut data = Vec::with_capacity(len);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
        while data.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(len);
        std::fs::write(self.dir.path().join(name), &data).unwrap();
        hex::encode(Sha256::digest(&data))
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{ORIGIN_HOST}:{}/{name}", self.addr.port())
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `lastmile-agent run`, killed when dropped.
pub struct AgentProcess {
    pub child: Child,
    log: PathBuf,
}

impl AgentProcess {
    pub fn start(state: &Path, data_port: u16, origin: &Origin, log: PathBuf) -> AgentProcess {
        let ip = std::net::Ipv4Addr::LOCALHOST;
        Self::start_at(state, ip, data_port, free_port(), origin, log)
    }

    /// Downloads and BGP on `ip`: a loopback address of the test's own.
    pub fn start_at(
        state: &Path,
        ip: std::net::Ipv4Addr,
        data_port: u16,
        bgp_port: u16,
        origin: &Origin,
        log: PathBuf,
    ) -> AgentProcess {
        let child = Command::new(AGENT)
            .arg("run")
            .arg("--state-dir")
            .arg(state)
            .arg("--listen")
            .arg(format!("{ip}:{data_port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--bgp-listen")
            .arg(format!("{ip}:{bgp_port}"))
            .arg("--origin-port")
            .arg(origin.addr.port().to_string())
            .arg("--origin-resolve")
            .arg(format!("{ORIGIN_HOST}={}", origin.addr))
            // Small slices, so a few MiB make many of them.
            .arg("--slice-bytes")
            .arg("262144")
            .env("LASTMILE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        AgentProcess { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }

    pub fn wait(&mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the agent said.
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.log());
        }
    }
}

/// Polls `check` until it returns `Some`, or fails with `what`.
pub async fn eventually<T, F, Fut>(what: &str, seconds: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn node(admin: &Client, name: &str) -> Value {
    admin.call("node", &[("name", name)]).await.expect("node")
}

pub fn register_with(portal: &TestPortal, key: &str, state: &Path) -> std::process::Output {
    Command::new(AGENT)
        .arg("register")
        .arg("--portal")
        .arg(&portal.base)
        .arg("--ca-file")
        .arg(portal.ca_file.as_ref().unwrap())
        .arg("--state-dir")
        .arg(state)
        .env(lastmile_wire::REGISTRATION_KEY_ENV, key)
        .output()
        .unwrap()
}

/// Waits until steering sends `client` to `expected` ("CDN" for none).
pub async fn steered_to(portal: &TestPortal, client: &str, expected: &str) {
    let url = format!("{}/api/v1/steer?client={client}", portal.base);
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    eventually(
        &format!("steering to send {client} to {expected}"),
        15,
        || async {
            let answer: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let first = answer["nodes"][0]["name"].as_str().unwrap_or("CDN");
            (first == expected).then_some(())
        },
    )
    .await
}

/// Runs the reference client; returns its stdout and stderr.
pub fn fetch(
    portal: &TestPortal,
    origin: &Origin,
    url: &str,
    client: &str,
    out: &Path,
    sha: &str,
) -> (bool, String) {
    let output = Command::new(AGENT)
        .arg("fetch")
        .arg(url)
        .arg("--origin-resolve")
        .arg(format!("{ORIGIN_HOST}={}", origin.addr))
        .arg("--portal")
        .arg(&portal.base)
        .arg("--ca-file")
        .arg(portal.ca_file.as_ref().unwrap())
        .arg("--client")
        .arg(client)
        .arg("--output")
        .arg(out)
        .arg("--sha256")
        .arg(sha)
        .arg("--chunk-bytes")
        .arg("1048576")
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Creates a node on 127.0.0.1 with one drive under `work`, serving
/// 10.9.0.0/16 and the test origin, and returns its registration key.
pub async fn provisioned_node(admin: &Client, work: &Path, name: &str, egress_mbps: &str) -> Value {
    let drive = work.join(format!("{name}-drive"));
    std::fs::create_dir_all(&drive).unwrap();
    admin
        .call(
            "create_node",
            &[
                ("name", name),
                ("public_ipv4", "127.0.0.1"),
                ("max_egress_mbps", egress_mbps),
                ("enabled", "on"),
                ("drives", &format!("{} 1", drive.display())),
                ("extra_hosts", ORIGIN_HOST),
            ],
        )
        .await
        .expect("create node");
    admin
        .call(
            "save_manual_routing",
            &[("name", name), ("prefixes", "10.9.0.0/16")],
        )
        .await
        .unwrap();
    admin
        .call("issue_registration_key", &[("name", name)])
        .await
        .unwrap()
}
