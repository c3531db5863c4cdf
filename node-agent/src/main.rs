//! `lastmile-agent`: turns a Linux server into a Lastmile cache node.
//!
//! - `register`: trade the single-use key from the portal for the node's
//!   credential (the install script runs this);
//! - `run`: serve downloads, follow the portal's configuration, run BGP,
//!   report (the systemd unit runs this);
//! - `fetch URL`: download a file the way an update client would, through
//!   steering, with fallback to the CDN.

mod control;
mod fetch;
mod portal;
mod routes;
mod state;

use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use portal::{Portal, Trust};
use state::{Registration, StateDir};

#[derive(Parser, Debug)]
#[command(
    name = "lastmile-agent",
    version,
    about = "The Lastmile cache node agent."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register this server as a node, with the key the portal issued (read
    /// from the LASTMILE_REGISTRATION_KEY environment variable, so it never
    /// shows in a process list or a shell history).
    Register(RegisterArgs),
    /// Run the node: serve downloads, follow the portal, report.
    Run(RunArgs),
    /// Download a file as an update client does: ask steering, fetch in
    /// parallel ranges, fall back to the CDN if the node fails.
    Fetch(FetchArgs),
}

#[derive(Args, Debug, Clone)]
struct TrustArgs {
    /// Trust the portal whose public key has this pin (sha256//BASE64, as
    /// the portal's install command gives it). For a self-signed portal.
    #[arg(long, conflicts_with = "ca_file")]
    pin: Option<String>,
    /// Trust the portal's certificate if this CA (PEM) signed it.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

impl TrustArgs {
    fn trust(&self) -> Result<Trust, String> {
        Ok(match (&self.pin, &self.ca_file) {
            (Some(pin), _) => Trust::Pin(pin.clone()),
            (None, Some(path)) => {
                // Kept by absolute path: the agent runs from another folder.
                let absolute = std::fs::canonicalize(path)
                    .map_err(|e| format!("the CA file {}: {e}", path.display()))?;
                Trust::CaFile(absolute)
            }
            (None, None) => Trust::System,
        })
    }
}

#[derive(Args, Debug)]
struct RegisterArgs {
    /// The portal's address, e.g. https://portal.isp.example:8443.
    #[arg(long, env = "LASTMILE_PORTAL")]
    portal: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Where the agent keeps its credential and configuration.
    #[arg(long, env = "LASTMILE_STATE_DIR", default_value = "/var/lib/lastmile")]
    state_dir: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[arg(long, env = "LASTMILE_STATE_DIR", default_value = "/var/lib/lastmile")]
    state_dir: PathBuf,
    /// Where subscribers download from.
    #[arg(long, env = "LASTMILE_LISTEN", default_value = "0.0.0.0:80")]
    listen: SocketAddr,
    /// Prometheus metrics (/metrics) and health (/healthz), off the data port.
    #[arg(long, env = "LASTMILE_ADMIN_LISTEN", default_value = "127.0.0.1:9180")]
    admin_listen: SocketAddr,
    /// Where the ISP's routers connect in BGP mode.
    #[arg(long, env = "LASTMILE_BGP_LISTEN", default_value = "0.0.0.0:179")]
    bgp_listen: SocketAddr,
    /// Also connect out to each BGP neighbor at this port, instead of only
    /// waiting for the router to connect.
    #[arg(long, env = "LASTMILE_BGP_CONNECT_PORT")]
    bgp_connect_port: Option<u16>,
    /// Port of the origins (the CDN).
    #[arg(long, env = "LASTMILE_ORIGIN_PORT", default_value_t = 80)]
    origin_port: u16,
    /// Reach an origin host at a fixed address instead of resolving it,
    /// like curl's --resolve: HOST=ADDRESS:PORT. Repeatable. For labs.
    #[arg(long = "origin-resolve", value_parser = lastmile_cache::parse_resolve)]
    origin_resolve: Vec<(String, SocketAddr)>,
    /// Size of the slices objects are cached in.
    #[arg(long, env = "LASTMILE_SLICE_BYTES", default_value_t = 1024 * 1024)]
    slice_bytes: u64,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// The file's URL at the origin (the CDN).
    url: String,
    /// Ask this portal's steering which node to use; without it the file
    /// comes from the origin.
    #[arg(long, env = "LASTMILE_PORTAL")]
    portal: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Steer as this subscriber address (default: the address the portal
    /// sees the request come from).
    #[arg(long)]
    client: Option<String>,
    /// Where to write the file (default: its name in the current folder).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Expected SHA-256 (hex); a mismatch fails the download and removes
    /// the file.
    #[arg(long)]
    sha256: Option<String>,
    /// Range requests in flight at once.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Size of each range request.
    #[arg(long, default_value_t = 1024 * 1024)]
    chunk_bytes: u64,
    /// Reach an origin host at a fixed address instead of resolving it,
    /// like curl's --resolve: HOST=ADDRESS:PORT. Repeatable. For labs.
    #[arg(long = "origin-resolve", value_parser = lastmile_cache::parse_resolve)]
    origin_resolve: Vec<(String, SocketAddr)>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LASTMILE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lastmile-agent: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Register(args) => register(args).await,
            Command::Run(args) => run(args).await,
            Command::Fetch(args) => fetch_command(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lastmile-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

async fn register(args: RegisterArgs) -> Result<(), String> {
    let key = std::env::var(lastmile_wire::REGISTRATION_KEY_ENV).map_err(|_| {
        format!(
            "set {} to the registration key the portal issued",
            lastmile_wire::REGISTRATION_KEY_ENV
        )
    })?;
    let trust = args.trust.trust()?;
    let portal = Portal::new(&args.portal, &trust, None).map_err(|e| e.to_string())?;
    let state = StateDir::new(&args.state_dir);
    state
        .ensure()
        .map_err(|e| format!("preparing {}: {e}", args.state_dir.display()))?;
    let registered = portal
        .register(&lastmile_wire::RegisterRequest {
            key: key.trim().to_string(),
            agent_version: control::AGENT_VERSION.to_string(),
            hostname: hostname(),
        })
        .await
        .map_err(|e| e.to_string())?;
    state
        .save_registration(&Registration {
            portal: args.portal.trim_end_matches('/').to_string(),
            trust,
            node_id: registered.node_id,
            node_name: registered.node_name.clone(),
            org_name: registered.org_name.clone(),
            credential: registered.credential,
        })
        .map_err(|e| format!("saving the credential in {}: {e}", args.state_dir.display()))?;
    println!(
        "Registered as node {} of {}. Credential saved in {}.",
        registered.node_name,
        registered.org_name,
        args.state_dir.display()
    );
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    let options = control::RunOptions {
        state_dir: args.state_dir,
        listen: args.listen,
        admin_listen: Some(args.admin_listen),
        bgp_listen: args.bgp_listen,
        bgp_connect_port: args.bgp_connect_port,
        origin_port: args.origin_port,
        origin_resolve: args.origin_resolve.into_iter().collect::<HashMap<_, _>>(),
        slice_size: args.slice_bytes,
    };
    control::run(options, shutdown_signal()).await
}

async fn fetch_command(args: FetchArgs) -> Result<(), String> {
    let output = match args.output {
        Some(path) => path,
        None => {
            let name = args
                .url
                .split('?')
                .next()
                .and_then(|u| u.rsplit('/').next())
                .filter(|n| !n.is_empty())
                .unwrap_or("download");
            PathBuf::from(name)
        }
    };
    let summary = fetch::fetch(fetch::FetchOptions {
        url: args.url,
        portal: args.portal,
        trust: args.trust.trust()?,
        client: args.client,
        output: output.clone(),
        sha256: args.sha256,
        connections: args.connections,
        chunk_size: args.chunk_bytes,
        progress: fetch::stderr_is_terminal(),
        resolve: args.origin_resolve,
    })
    .await?;
    print!("{}: {}", output.display(), summary.describe());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
