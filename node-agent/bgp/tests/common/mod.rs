//! A lab for the speaker's tests: loopback addresses of its own per test,
//! real routers (BIRD 2, GoBGP) started in private directories and killed
//! on drop, and a hand-made peer for messages no router would send.
//!
//! Every test gets its own 127.x.y.0/24 corner of the loopback network, so
//! tests in parallel, and other test binaries, never share an address.

#![allow(dead_code)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use lastmile_bgp::{
    NeighborConfig, PeerStatus, RetryPolicy, Route, SessionState, Speaker, SpeakerConfig,
};

/// Long enough for a router on a loaded 2-core machine; the waits return
/// as soon as the condition holds, so passing tests never wait this long.
pub const PATIENCE: Duration = Duration::from_secs(40);

static NEXT_LAB: AtomicU8 = AtomicU8::new(1);

pub struct Lab {
    /// The node running the speaker.
    pub speaker_ip: Ipv4Addr,
    /// The ISP's router.
    pub router_ip: Ipv4Addr,
    /// An address no configuration mentions.
    pub stranger_ip: Ipv4Addr,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let pid_octet = 20 + (std::process::id() % 200) as u8;
        let lab = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let ip = |host| Ipv4Addr::new(127, pid_octet, lab, host);
        Lab {
            speaker_ip: ip(1),
            router_ip: ip(2),
            stranger_ip: ip(3),
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// A port nobody listens on at `ip` (the address is this lab's alone,
    /// so nobody else will take it in the meantime).
    pub fn free_port(&self, ip: Ipv4Addr) -> u16 {
        TcpListener::bind((ip, 0))
            .expect("bind a loopback address")
            .local_addr()
            .unwrap()
            .port()
    }

    /// A speaker configuration listening on this lab's node address.
    pub fn speaker_config(&self, local_asn: u32) -> SpeakerConfig {
        let mut config = SpeakerConfig::new(local_asn, self.speaker_ip);
        config.listen = Some(SocketAddr::new(self.speaker_ip.into(), 0));
        config.hold_time = 9;
        config.connect_retry = RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(2),
        };
        config
    }

    pub fn neighbor(&self, remote_asn: u32) -> NeighborConfig {
        NeighborConfig::new(self.router_ip, remote_asn)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Waits until `condition` holds for the speaker's view, re-checking on
/// every change it announces; panics with the speaker's state if it never
/// does.
pub async fn wait_for(
    speaker: &Speaker,
    what: &str,
    mut condition: impl FnMut(&[PeerStatus], &[Route]) -> bool,
) {
    let mut changes = speaker.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let peers = speaker.peers();
        let routes = speaker.routes();
        if condition(&peers, &routes) {
            return;
        }
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        if changed.is_err() {
            panic!("timed out waiting for {what}\npeers: {peers:#?}\nroutes: {routes:#?}");
        }
    }
}

pub async fn wait_for_state(speaker: &Speaker, peer: Ipv4Addr, state: SessionState) {
    wait_for(speaker, &format!("{peer} {state}"), |peers, _| {
        peers.iter().any(|p| p.address == peer && p.state == state)
    })
    .await;
}

pub fn peer(speaker: &Speaker, address: Ipv4Addr) -> PeerStatus {
    speaker
        .peers()
        .into_iter()
        .find(|p| p.address == address)
        .expect("the neighbor is configured")
}

pub fn prefixes(routes: &[Route]) -> Vec<String> {
    routes.iter().map(|r| r.prefix.to_string()).collect()
}

fn require(program: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "`{program}` is not installed: these tests run real BGP daemons. \
         Install Debian's bird2 and gobgpd packages (scripts/test does)."
    );
}

/// A daemon command that dies with the test process, even when that is
/// killed outright and no destructor runs.
fn daemon(program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(require(program));
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn kill(child: &mut Child) {
    let _ = signal_quietly(child, "CONT");
    let _ = child.kill();
    let _ = child.wait();
}

fn signal_quietly(child: &Child, name: &str) -> std::io::Result<()> {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
}

/// BIRD's side of a session with the node. `extra` goes inside the
/// protocol block (timers, passive, next hop policy...).
pub fn bgp_protocol(
    name: &str,
    lab: &Lab,
    router_port: u16,
    router_asn: u32,
    speaker_port: u16,
    speaker_asn: u32,
    extra: &str,
) -> String {
    format!(
        "protocol bgp {name} {{
  local {router} port {router_port} as {router_asn};
  neighbor {speaker} port {speaker_port} as {speaker_asn};
  multihop;
  hold time 9;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  {extra}
  ipv4 {{ import none; export where source = RTS_STATIC; }};
}}",
        router = lab.router_ip,
        speaker = lab.speaker_ip,
    )
}

/// BIRD 2 as the ISP's router: one config file, a private control socket.
pub struct Bird {
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Bird {
    /// Starts BIRD with `protocols` (static routes, BGP sessions) after a
    /// router ID and logging preamble.
    pub fn start(lab: &Lab, name: &str, router_id: Ipv4Addr, protocols: &str) -> Bird {
        let config = lab.path(&format!("{name}.conf"));
        let socket = lab.path(&format!("{name}.ctl"));
        let log = lab.path(&format!("{name}.log"));
        let text = format!(
            "log \"{}\" all;\nrouter id {router_id};\ndebug protocols {{ states, events }};\n{protocols}\n",
            log.display()
        );
        std::fs::write(&config, text).unwrap();
        let mut bird = Bird {
            config,
            socket,
            log,
            child: None,
        };
        bird.spawn();
        bird
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = daemon("bird")
            .arg("-f")
            .arg("-c")
            .arg(&self.config)
            .arg("-s")
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bird");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = self
                    .child
                    .as_mut()
                    .unwrap()
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr);
                panic!(
                    "bird exited ({status}): {stderr}\nconfig:\n{}",
                    std::fs::read_to_string(&self.config).unwrap()
                );
            }
            if self
                .try_birdc("show status")
                .is_some_and(|out| out.contains("Daemon is up"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "bird did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_birdc(&self, command: &str) -> Option<String> {
        let output = Command::new(require("birdc"))
            .arg("-s")
            .arg(&self.socket)
            .args(command.split_whitespace())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a birdc command (e.g. "disable routes") and returns its output.
    pub fn birdc(&self, command: &str) -> String {
        self.try_birdc(command)
            .unwrap_or_else(|| panic!("birdc {command} failed; log:\n{}", self.log_text()))
    }

    /// Polls `birdc show protocols all <protocol>` until it mentions `text`.
    pub fn wait_protocol_says(&self, protocol: &str, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.birdc(&format!("show protocols all {protocol}"));
            if out.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bird's {protocol} never said {text:?}:\n{out}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls BIRD's log until it mentions `text` (for events the protocol
    /// status no longer shows once the session is back up).
    pub fn wait_log_says(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "bird's log never said {text:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Graceful stop (BIRD closes its sessions with a Cease).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            if !wait_exit(&mut child, Duration::from_secs(10)) {
                kill(&mut child);
            }
        }
    }

    /// Starts again with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes the process: its sessions go silent without closing.
    pub fn pause(&self) {
        signal(self.child.as_ref().expect("running"), "STOP");
    }

    pub fn resume(&self) {
        signal(self.child.as_ref().expect("running"), "CONT");
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

/// GoBGP as the ISP's router: a TOML config, its gRPC API on this lab's
/// router address.
pub struct GoBgp {
    child: Child,
    api: SocketAddr,
    log: PathBuf,
}

impl GoBgp {
    pub fn start(lab: &Lab, config_toml: &str) -> GoBgp {
        let config = lab.path("gobgpd.toml");
        let log = lab.path("gobgpd.log");
        std::fs::write(&config, config_toml).unwrap();
        let api = SocketAddr::new(lab.router_ip.into(), lab.free_port(lab.router_ip));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = daemon("gobgpd")
            .arg("-f")
            .arg(&config)
            .arg("-t")
            .arg("toml")
            .arg("--api-hosts")
            .arg(api.to_string())
            .arg("--pprof-disable")
            .arg("--log-plain")
            .arg("--log-level=debug")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start gobgpd");
        let mut gobgp = GoBgp { child, api, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = gobgp.child.try_wait().unwrap() {
                panic!("gobgpd exited ({status}):\n{}", gobgp.log_text());
            }
            if gobgp.try_cli(&["global"]).is_some() {
                return gobgp;
            }
            assert!(
                Instant::now() < deadline,
                "gobgpd did not come up:\n{}",
                gobgp.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let output = Command::new(require("gobgp"))
            .arg("-u")
            .arg(self.api.ip().to_string())
            .arg("-p")
            .arg(self.api.port().to_string())
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a `gobgp` command against this daemon.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("gobgp {args:?} failed; log:\n{}", self.log_text()))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GoBgp {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A peer written by hand: it says exactly what a test wants, including
/// what no router would.
pub struct RawPeer {
    pub stream: tokio::net::TcpStream,
}

pub const AS_TRANS: u16 = 23456;

impl RawPeer {
    /// Connects from `from` to the speaker.
    pub async fn connect(from: Ipv4Addr, to: SocketAddr) -> RawPeer {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from.into(), 0)).unwrap();
        let stream = socket.connect(to).await.expect("connect to the speaker");
        RawPeer { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("send to the speaker");
    }

    /// Sends, ignoring errors: the speaker may already have closed.
    pub async fn send_quietly(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads one message; `None` when the speaker closed the connection.
    pub async fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let mut header = [0u8; 19];
            self.stream.read_exact(&mut header).await.ok()?;
            assert!(
                header[..16].iter().all(|&b| b == 0xff),
                "bad marker from the speaker"
            );
            let length = u16::from_be_bytes([header[16], header[17]]) as usize;
            assert!(
                (19..=4096).contains(&length),
                "bad length {length} from the speaker"
            );
            let mut body = vec![0; length - 19];
            self.stream.read_exact(&mut body).await.ok()?;
            Some((header[18], body))
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the speaker said nothing for too long")
    }

    /// Reads until a NOTIFICATION arrives (skipping KEEPALIVEs and OPEN);
    /// returns (code, subcode, data).
    pub async fn expect_notification(&mut self) -> (u8, u8, Vec<u8>) {
        loop {
            match self.read_message().await {
                Some((3, body)) => return (body[0], body[1], body[2..].to_vec()),
                Some((1 | 4, _)) => continue,
                Some((other, _)) => panic!("unexpected message type {other}"),
                None => panic!("the speaker closed the connection without a NOTIFICATION"),
            }
        }
    }

    /// The speaker's OPEN (the first message it sends).
    pub async fn expect_open(&mut self) -> Vec<u8> {
        match self.read_message().await {
            Some((1, body)) => body,
            other => panic!("expected OPEN, got {other:?}"),
        }
    }

    pub async fn expect_keepalive(&mut self) {
        match self.read_message().await {
            Some((4, _)) => {}
            other => panic!("expected KEEPALIVE, got {other:?}"),
        }
    }

    /// OPEN, then KEEPALIVE both ways: the session is Established.
    pub async fn establish(
        &mut self,
        asn: u32,
        hold_time: u16,
        router_id: Ipv4Addr,
        four_octet: bool,
    ) {
        self.expect_open().await;
        self.send(&open(asn, hold_time, router_id, four_octet))
            .await;
        self.expect_keepalive().await;
        self.send(&keepalive()).await;
    }

    /// Reads until the speaker closes the connection; returns the
    /// NOTIFICATION it sent on the way, if any.
    pub async fn wait_closed(&mut self) -> Option<(u8, u8)> {
        let mut notification = None;
        while let Some((message_type, body)) = self.read_message().await {
            if message_type == 3 {
                notification = Some((body[0], body[1]));
            }
        }
        notification
    }
}

pub fn message(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(message_type);
    out.extend_from_slice(body);
    out
}

pub fn keepalive() -> Vec<u8> {
    message(4, &[])
}

/// An OPEN with the multiprotocol IPv4 unicast capability and, when
/// `four_octet`, the 4-octet ASN capability.
pub fn open(asn: u32, hold_time: u16, router_id: Ipv4Addr, four_octet: bool) -> Vec<u8> {
    let my_as = if asn > 65535 { AS_TRANS } else { asn as u16 };
    let mut capabilities = vec![1, 4, 0, 1, 0, 1];
    if four_octet {
        capabilities.extend_from_slice(&[65, 4]);
        capabilities.extend_from_slice(&asn.to_be_bytes());
    }
    open_with(
        4,
        my_as,
        hold_time,
        router_id,
        &[&[2, capabilities.len() as u8], &capabilities[..]].concat(),
    )
}

pub fn open_with(
    version: u8,
    my_as: u16,
    hold_time: u16,
    router_id: Ipv4Addr,
    params: &[u8],
) -> Vec<u8> {
    let mut body = vec![version];
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&hold_time.to_be_bytes());
    body.extend_from_slice(&router_id.octets());
    body.push(params.len() as u8);
    body.extend_from_slice(params);
    message(1, &body)
}

pub fn attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, type_code, value.len() as u8];
    out.extend_from_slice(value);
    out
}

pub fn origin_igp() -> Vec<u8> {
    attribute(0x40, 1, &[0])
}

pub fn as_path(asns: &[u32], four_octet: bool) -> Vec<u8> {
    let mut value = vec![2, asns.len() as u8];
    for &asn in asns {
        if four_octet {
            value.extend_from_slice(&asn.to_be_bytes());
        } else {
            value.extend_from_slice(&(asn as u16).to_be_bytes());
        }
    }
    attribute(0x40, 2, &value)
}

pub fn next_hop(address: Ipv4Addr) -> Vec<u8> {
    attribute(0x40, 3, &address.octets())
}

/// `<length, prefix>` for "a.b.c.d/len".
pub fn nlri(prefix: &str) -> Vec<u8> {
    let net: ipnet::Ipv4Net = prefix.parse().unwrap();
    let octets = (net.prefix_len() as usize).div_ceil(8);
    let mut out = vec![net.prefix_len()];
    out.extend_from_slice(&net.network().octets()[..octets]);
    out
}

pub fn update(withdrawn: &[u8], attributes: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attributes = attributes.concat();
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(&attributes);
    body.extend_from_slice(nlri);
    message(2, &body)
}
