//! Command-line flags and environment variables. `lastmile-portal --help`
//! lists them all; the README repeats them.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "lastmile-portal",
    version,
    about = "The Lastmile portal: operators manage their cache nodes here, and node agents pull their configuration from it."
)]
pub struct Cli {
    /// Folder for the SQLite database and the self-signed certificate.
    #[arg(
        long,
        env = "LASTMILE_DATA_DIR",
        default_value = "lastmile-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Database to use: sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    /// Without it, a SQLite file in the data folder (created if missing).
    #[arg(
        long,
        env = "LASTMILE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the portal (what happens without a command).
    Serve,
    /// Create another organization (another ISP on a shared portal) with its
    /// first administrator, who gets a temporary password to change at first
    /// sign-in.
    CreateOrg {
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// The administrator's user name.
        #[arg(long)]
        admin: String,
        /// The temporary password. Without it one is generated and printed.
        #[arg(long, env = "LASTMILE_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "LASTMILE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// TLS certificate chain (PEM). With --tls-key, the portal speaks HTTPS.
    #[arg(long, env = "LASTMILE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "LASTMILE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Speak HTTPS with a self-signed certificate, made in the data folder on
    /// first run and reused after. Its SHA-256 fingerprint is printed at start.
    #[arg(long, env = "LASTMILE_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub self_signed: bool,

    /// Host names and addresses the self-signed certificate is made for.
    #[arg(
        long = "tls-name",
        env = "LASTMILE_TLS_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    pub tls_names: Vec<String>,

    /// Folder with the built browser bundle (`pkg/`). Defaults to `site`
    /// beside the folder of this executable, where scripts/build-site puts it.
    #[arg(long, env = "LASTMILE_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

    /// Take client addresses from X-Forwarded-For. Only behind a load
    /// balancer that sets it: otherwise clients could pick their own address
    /// and dodge sign-in throttling.
    #[arg(long, env = "LASTMILE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// The code the first-run setup page asks for. Without it, a random one
    /// is generated and printed while the portal is not set up.
    #[arg(long, env = "LASTMILE_SETUP_CODE", hide_env_values = true)]
    pub setup_code: Option<String>,

    /// The address agents and browsers reach the portal at, such as
    /// https://portal.isp.example:8443; install commands use it. Without it,
    /// the address the operator's browser used.
    #[arg(long, env = "LASTMILE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Hours a node registration key stays valid.
    #[arg(long, env = "LASTMILE_REGISTRATION_KEY_HOURS", default_value_t = 24)]
    pub registration_key_hours: u64,

    /// The node agent binary the portal serves to the install script.
    /// Defaults to `lastmile-agent` beside this executable.
    #[arg(long, env = "LASTMILE_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,

    /// Seconds between node agents' reports. A node that misses three is
    /// offline, and steering sends its clients to the CDN.
    #[arg(long, env = "LASTMILE_REPORT_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub report_interval_secs: u64,

    /// Seconds between node agents' configuration polls (each is a
    /// conditional GET that costs almost nothing when nothing changed).
    #[arg(long, env = "LASTMILE_CONFIG_POLL_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub config_poll_secs: u64,

    /// Hours without a request after which a session ends.
    #[arg(long, env = "LASTMILE_SESSION_IDLE_HOURS", default_value_t = 12)]
    pub session_idle_hours: u64,

    /// Serve Prometheus metrics of every organization at /metrics to
    /// requests that carry this token (Authorization: Bearer TOKEN).
    /// Without it /metrics is off.
    #[arg(long, env = "LASTMILE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Hours the per-minute traffic series is kept (the 1 h to 1 d charts
    /// read it; longer ranges read hours).
    #[arg(long, env = "LASTMILE_KEEP_MINUTE_TRAFFIC_HOURS", default_value_t = 48,
          value_parser = clap::value_parser!(u64).range(2..=24 * 31))]
    pub keep_minute_traffic_hours: u64,

    /// Days the hourly traffic series is kept.
    #[arg(long, env = "LASTMILE_KEEP_HOURLY_TRAFFIC_DAYS", default_value_t = 45,
          value_parser = clap::value_parser!(u64).range(1..=3660))]
    pub keep_hourly_traffic_days: u64,

    /// Days the daily traffic series is kept.
    #[arg(long, env = "LASTMILE_KEEP_DAILY_TRAFFIC_DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u64).range(1..=3660))]
    pub keep_daily_traffic_days: u64,
}

impl Cli {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("lastmile.db").display()))
    }
}

impl ServeArgs {
    pub fn agent_binary(&self) -> PathBuf {
        if let Some(path) = &self.agent_binary {
            return path.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("lastmile-agent")))
            .unwrap_or_else(|| PathBuf::from("lastmile-agent"))
    }

    /// The traffic retention the flags ask for; each coarser series must
    /// be kept at least as long as the finer one, or ranges would fall into
    /// a gap between them.
    pub fn traffic_retention(&self) -> Result<app::backend::traffic::TrafficRetention, String> {
        const HOUR_MS: i64 = 3_600_000;
        let retention = app::backend::traffic::TrafficRetention {
            minute_ms: self.keep_minute_traffic_hours as i64 * HOUR_MS,
            hour_ms: self.keep_hourly_traffic_days as i64 * 24 * HOUR_MS,
            day_ms: self.keep_daily_traffic_days as i64 * 24 * HOUR_MS,
        };
        if retention.hour_ms < retention.minute_ms || retention.day_ms < retention.hour_ms {
            return Err(format!(
                "keep hourly traffic at least as long as minutes, and daily at least as long as hourly \
                 (asked for {} hours of minutes, {} days of hours, {} days of days)",
                self.keep_minute_traffic_hours, self.keep_hourly_traffic_days, self.keep_daily_traffic_days
            ));
        }
        Ok(retention)
    }

    pub fn site_root(&self) -> PathBuf {
        if let Some(root) = &self.site_root {
            return root.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| {
                exe.parent()
                    .and_then(|dir| dir.parent())
                    .map(|p| p.join("site"))
            })
            .unwrap_or_else(|| PathBuf::from("target/site"))
    }
}
