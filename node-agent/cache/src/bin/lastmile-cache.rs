//! `lastmile-cache`: the cache data path on its own, for labs, benchmarks and
//! crash tests. The node agent embeds the library instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lastmile_cache::{parse_resolve, Cache, CacheConfig, DriveConfig};

#[derive(Parser, Debug)]
#[command(version, about = "Lastmile cache data path (standalone)")]
struct Args {
    /// Address of the data path.
    #[arg(long, default_value = "0.0.0.0:80")]
    listen: SocketAddr,
    /// Address of the admin port (/metrics, /healthz).
    #[arg(long, default_value = "127.0.0.1:9180")]
    admin: SocketAddr,
    /// A cache drive and its quota, `PATH:SIZE` (SIZE like 500G, 64M, 1T;
    /// binary units). Repeat for several drives.
    #[arg(long = "drive", value_name = "PATH:SIZE", value_parser = parse_drive)]
    drives: Vec<DriveConfig>,
    /// An allowed origin host pattern, added to the default list
    /// (`*.example.com` also matches `example.com`). Repeatable.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_hosts: Vec<String>,
    /// Start from an empty allow-list instead of the known content hosts.
    #[arg(long)]
    no_default_hosts: bool,
    /// Connect to ADDR for origin HOST instead of resolving it (like curl
    /// --resolve), `HOST=IP:PORT`. Repeatable.
    #[arg(long = "resolve", value_name = "HOST=IP:PORT", value_parser = parse_resolve)]
    resolve: Vec<(String, SocketAddr)>,
    /// TCP port of origins.
    #[arg(long, default_value_t = 80)]
    origin_port: u16,
    /// Slice size (binary units: 1M, 256K).
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    slice_size: u64,
    /// Node egress limit in bits per second (decimal units: 500M, 10G).
    #[arg(long, value_parser = parse_rate)]
    egress_limit: Option<u64>,
    /// A query parameter left out of the cache key, added to the defaults
    /// (a trailing * matches a prefix). Repeatable.
    #[arg(long = "ignore-query-param", value_name = "NAME")]
    ignore_query_params: Vec<String>,
    /// Seconds an object is served before asking the origin again, when the
    /// origin does not say.
    #[arg(long, default_value_t = 3600)]
    default_freshness: u64,
    /// Origin fetches running at once.
    #[arg(long, default_value_t = 256)]
    max_concurrent_fills: usize,
    /// Slices fetched ahead of the one a response is sending.
    #[arg(long, default_value_t = 4)]
    readahead_slices: u64,
    /// Origin connect timeout, milliseconds.
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
    /// Origin response-head timeout, milliseconds.
    #[arg(long, default_value_t = 15000)]
    response_timeout_ms: u64,
    /// Longest silence in an origin body before the fetch is taken over,
    /// milliseconds.
    #[arg(long, default_value_t = 10000)]
    stall_timeout_ms: u64,
    /// Start with the data path disabled (it answers 503).
    #[arg(long)]
    disabled: bool,
    /// Worker threads; 1 runs everything on one thread. Default: one per core.
    #[arg(long)]
    threads: Option<usize>,
    /// Log filter (tracing EnvFilter syntax); the RUST_LOG environment
    /// variable wins. `lastmile_cache::access=debug` logs every request.
    #[arg(long, default_value = "info")]
    log: String,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64M"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("unknown unit in {text:?} (use K, M, G or T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate like 500M"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().trim_end_matches("BPS") {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(format!("unknown unit in {text:?} (use k, M or G)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_drive(text: &str) -> Result<DriveConfig, String> {
    let (path, size) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not PATH:SIZE"))?;
    if path.is_empty() {
        return Err(format!("{text:?} has no path"));
    }
    Ok(DriveConfig {
        path: PathBuf::from(path),
        quota_bytes: parse_size(size)?,
    })
}

impl Args {
    fn config(&self) -> CacheConfig {
        let mut config = CacheConfig {
            enabled: !self.disabled,
            drives: self.drives.clone(),
            slice_size: self.slice_size,
            egress_limit_bits_per_sec: self.egress_limit,
            default_freshness: Duration::from_secs(self.default_freshness),
            max_concurrent_fills: self.max_concurrent_fills,
            readahead_slices: self.readahead_slices,
            ..CacheConfig::default()
        };
        if self.no_default_hosts {
            config.allowed_hosts.clear();
        }
        config
            .allowed_hosts
            .extend(self.allow_hosts.iter().cloned());
        config
            .ignored_query_params
            .extend(self.ignore_query_params.iter().cloned());
        config.origin.port = self.origin_port;
        config.origin.resolve = self.resolve.iter().cloned().collect();
        config.origin.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        config.origin.response_timeout = Duration::from_millis(self.response_timeout_ms);
        config.origin.stall_timeout = Duration::from_millis(self.stall_timeout_ms);
        config
    }
}

/// Every client connection, origin connection and open slice is a file
/// descriptor; the usual soft limit of 1024 is too few for a busy node.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let raise = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) => current < maximum,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if raise {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open file limit");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log));
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("lastmile-cache: bad --log filter: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    raise_open_file_limit();

    let runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lastmile-cache: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lastmile-cache: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::open(args.config()).await?;
    let data = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.admin))?;
    tracing::info!(listen = %args.listen, admin = %args.admin, "serving");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let data_task = tokio::spawn(lastmile_cache::serve(
        data,
        cache.clone(),
        wait(stopped.clone()),
    ));
    let admin_task = tokio::spawn(lastmile_cache::serve_admin(admin, cache, wait(stopped)));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    data_task.await??;
    admin_task.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_rate("500M"), Ok(500_000_000));
        assert_eq!(parse_rate("10Gbps"), Ok(10_000_000_000));
        assert_eq!(
            parse_drive("/srv/a:b:2G").unwrap(),
            DriveConfig {
                path: "/srv/a:b".into(),
                quota_bytes: 2 << 30
            }
        );
        assert!(parse_resolve("origin.test=127.0.0.1:8080").is_ok());
        assert!(parse_resolve("origin.test").is_err());
    }
}
