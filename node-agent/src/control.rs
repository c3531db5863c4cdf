//! `lastmile-agent run`: the node's control loop.
//!
//! Three things run side by side, each able to fail without stopping the
//! others (the lesson of Traffic Control's config pull: the data path must
//! never depend on the control plane being up):
//!
//! - the data path (the cache), serving on the last good configuration;
//! - the config loop: a conditional GET every poll interval (with jitter,
//!   so a fleet restarted together does not poll in lockstep), apply, then
//!   acknowledge the version or the reason it could not be applied;
//! - the report loop: cumulative counters, health and BGP state every report
//!   interval, and at once when BGP routes change, so steering follows the
//!   router within seconds.

use lastmile_bgp::{NeighborConfig, Speaker, SpeakerConfig};
use lastmile_cache::{Cache, CacheConfig, DriveConfig, OriginConfig};
use lastmile_wire::{
    AppliedRequest, BgpReport, BgpSession, Counters, DriveUsage, FamilyBytes, NodeConfig, Report,
    Routing,
};
use rand::Rng;
use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};

use crate::portal::{ConfigPoll, Portal, PortalError};
use crate::routes::RouteSync;
use crate::state::{SavedConfig, StateDir};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings of the agent process itself (as opposed to the node's
/// configuration, which comes from the portal).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    /// Where subscribers' downloads are served.
    pub listen: SocketAddr,
    /// Prometheus metrics and health, kept off the data port.
    pub admin_listen: Option<SocketAddr>,
    /// Where routers connect in BGP mode.
    pub bgp_listen: SocketAddr,
    /// Also connect out to each neighbor at this port (active mode);
    /// `None` waits for the router.
    pub bgp_connect_port: Option<u16>,
    pub origin_port: u16,
    /// Origin host → address overrides, like curl's `--resolve`.
    pub origin_resolve: HashMap<String, SocketAddr>,
    pub slice_size: u64,
}

/// 1 GB as operators and disk vendors count it.
const BYTES_PER_GB: u64 = 1_000_000_000;

struct Agent {
    portal: Portal,
    state: StateDir,
    options: RunOptions,
    cache: Arc<Cache>,
    /// The configuration in force and its ETag.
    applied: Mutex<Option<SavedConfig>>,
    /// An acknowledgement the portal has not received yet.
    pending_ack: Mutex<Option<AppliedRequest>>,
    bgp: Mutex<Option<Speaker>>,
    routes: Mutex<RouteSync>,
    /// A BGP change wants a report now rather than at the next tick.
    report_soon: Arc<Notify>,
    report_interval_secs: AtomicU64,
    poll_interval_secs: AtomicU64,
    boot_id: String,
}

pub async fn run(
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let state = StateDir::new(&options.state_dir);
    let registration = state.load_registration()?;
    let portal = Portal::new(
        &registration.portal,
        &registration.trust,
        Some(registration.credential.clone()),
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(node = %registration.node_name, org = %registration.org_name, portal = %registration.portal, "agent starting");

    // Serve on the last good configuration at once: the portal may be away.
    let saved = state.load_config();
    let initial = match &saved {
        Some(saved) => cache_config(&saved.config, &options),
        None => disabled_cache_config(&options),
    };
    let mut saved_config_works = true;
    let cache = match Cache::open(initial).await {
        Ok(cache) => cache,
        Err(e) => {
            // The saved drives are gone or broken; serve nothing until the
            // portal's configuration (or the operator) fixes it.
            tracing::error!(error = %e, "the saved configuration cannot be used");
            saved_config_works = false;
            Cache::open(disabled_cache_config(&options))
                .await
                .map_err(|e| format!("opening the cache: {e}"))?
        }
    };

    let data_listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen for downloads on {}: {e}", options.listen))?;
    let admin_listener = match options.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let data_port = data_listener.local_addr().map(|a| a.port()).unwrap_or(80);
    tracing::info!(listen = %options.listen, "serving downloads");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let data_server = tokio::spawn(lastmile_cache::serve(
        data_listener,
        cache.clone(),
        stopped(stop_rx.clone()),
    ));
    let admin_server = admin_listener.map(|listener| {
        tokio::spawn(lastmile_cache::serve_admin(
            listener,
            cache.clone(),
            stopped(stop_rx.clone()),
        ))
    });

    let agent = Arc::new(Agent {
        portal,
        state,
        options: RunOptions {
            listen: SocketAddr::new(options.listen.ip(), data_port),
            ..options
        },
        cache,
        applied: Mutex::new(None),
        pending_ack: Mutex::new(None),
        bgp: Mutex::new(None),
        routes: Mutex::new(RouteSync::default()),
        report_soon: Arc::new(Notify::new()),
        report_interval_secs: AtomicU64::new(30),
        poll_interval_secs: AtomicU64::new(15),
        boot_id: hex::encode(rand::thread_rng().gen::<[u8; 16]>()),
    });
    if let Some(saved) = saved {
        if saved_config_works {
            let started = match agent.speaker_config(&saved.config) {
                Ok(wanted) => agent.apply_routing(wanted).await,
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                tracing::error!(error = %e, "starting BGP from the saved configuration");
            }
            agent.adopt_intervals(&saved.config);
            tracing::info!(
                version = saved.config.version,
                "serving on the saved configuration"
            );
            *agent.pending_ack.lock().await = Some(AppliedRequest {
                version: saved.config.version,
                error: None,
            });
            *agent.applied.lock().await = Some(saved);
        }
    }

    let config_loop = tokio::spawn(agent.clone().config_loop());
    let report_loop = tokio::spawn(agent.clone().report_loop());
    shutdown.await;
    tracing::info!("agent stopping");
    config_loop.abort();
    report_loop.abort();
    // A last report, so the portal has the final counters; and a Cease to
    // the routers, so they drop the session at once instead of waiting for
    // the hold timer.
    let _ = tokio::time::timeout(Duration::from_secs(3), agent.send_report()).await;
    if let Some(speaker) = agent.bgp.lock().await.take() {
        speaker.shutdown().await;
    }
    let _ = stop_tx.send(true);
    let _ = data_server.await;
    if let Some(admin) = admin_server {
        let _ = admin.await;
    }
    Ok(())
}

fn disabled_cache_config(options: &RunOptions) -> CacheConfig {
    CacheConfig {
        enabled: false,
        slice_size: options.slice_size,
        origin: origin_config(options),
        ..CacheConfig::default()
    }
}

fn origin_config(options: &RunOptions) -> OriginConfig {
    OriginConfig {
        port: options.origin_port,
        resolve: options.origin_resolve.clone(),
        ..OriginConfig::default()
    }
}

/// The cache's part of a node configuration.
fn cache_config(config: &NodeConfig, options: &RunOptions) -> CacheConfig {
    let mut allowed_hosts = lastmile_cache::default_allowed_hosts();
    allowed_hosts.extend(config.extra_allowed_hosts.iter().cloned());
    CacheConfig {
        enabled: config.enabled,
        drives: config
            .drives
            .iter()
            .map(|d| DriveConfig {
                path: PathBuf::from(&d.path),
                quota_bytes: d.size_gb.saturating_mul(BYTES_PER_GB),
            })
            .collect(),
        slice_size: options.slice_size,
        allowed_hosts,
        egress_limit_bits_per_sec: Some(config.max_egress_mbps.saturating_mul(1_000_000))
            .filter(|bps| *bps > 0),
        origin: origin_config(options),
        ..CacheConfig::default()
    }
}

fn jittered(secs: u64) -> Duration {
    // ±10 %, so agents restarted together drift apart.
    let base = Duration::from_secs(secs.max(1));
    base.mul_f64(rand::thread_rng().gen_range(0.9..1.1))
}

impl Agent {
    fn adopt_intervals(&self, config: &NodeConfig) {
        self.report_interval_secs
            .store(config.report_interval_secs.max(1), Ordering::Relaxed);
        self.poll_interval_secs
            .store(config.poll_interval_secs.max(1), Ordering::Relaxed);
    }

    async fn config_loop(self: Arc<Self>) {
        let mut credential_warned = false;
        loop {
            match self.poll_once().await {
                Ok(()) => credential_warned = false,
                Err(e) if e.is_credential_refused() => {
                    if !credential_warned {
                        tracing::error!(error = %e, "the portal no longer accepts this node's credential; still serving on the last configuration");
                        credential_warned = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "configuration poll failed; still serving on the last configuration")
                }
            }
            tokio::time::sleep(jittered(self.poll_interval_secs.load(Ordering::Relaxed))).await;
        }
    }

    async fn poll_once(&self) -> Result<(), PortalError> {
        let etag = self.applied.lock().await.as_ref().map(|s| s.etag.clone());
        match self.portal.poll_config(etag.as_deref()).await? {
            ConfigPoll::Unchanged => {}
            ConfigPoll::Changed { config, etag } => {
                let version = config.version;
                // The intervals are the portal's, not the node's: they hold
                // even when the rest cannot be applied.
                self.adopt_intervals(&config);
                match self.apply(&config).await {
                    Ok(()) => {
                        tracing::info!(version, "configuration applied");
                        let saved = SavedConfig { etag, config };
                        if let Err(e) = self.state.save_config(&saved) {
                            tracing::warn!(error = %e, "could not save the configuration; a restart would start from the previous one");
                        }
                        *self.applied.lock().await = Some(saved);
                        *self.pending_ack.lock().await = Some(AppliedRequest {
                            version,
                            error: None,
                        });
                    }
                    Err(reason) => {
                        // The ETag is not kept, so the next poll tries again:
                        // a drive that comes back makes the same version work.
                        tracing::error!(version, %reason, "configuration not applied; still serving on the previous one");
                        *self.pending_ack.lock().await = Some(AppliedRequest {
                            version,
                            error: Some(reason),
                        });
                    }
                }
                // Whether the node serves may have changed, and the report
                // interval with it: tell the portal now, not at the next tick.
                self.report_soon.notify_one();
            }
        }
        self.send_pending_ack().await
    }

    async fn send_pending_ack(&self) -> Result<(), PortalError> {
        let pending = self.pending_ack.lock().await.clone();
        if let Some(ack) = pending {
            self.portal.applied(&ack).await?;
            let mut slot = self.pending_ack.lock().await;
            if slot.as_ref() == Some(&ack) {
                *slot = None;
            }
        }
        Ok(())
    }

    /// Applies a configuration: every check first, then the cache, then
    /// routing. On error the reason is for the operator.
    async fn apply(&self, config: &NodeConfig) -> Result<(), String> {
        let cache_config = cache_config(config, &self.options);
        let speaker_config = self.speaker_config(config)?;
        if let Some(speaker_config) = &speaker_config {
            speaker_config
                .validate()
                .map_err(|e| format!("BGP settings: {e}"))?;
        }
        self.cache
            .apply(cache_config)
            .await
            .map_err(|e| e.to_string())?;
        self.apply_routing(speaker_config).await
    }

    fn speaker_config(&self, config: &NodeConfig) -> Result<Option<SpeakerConfig>, String> {
        let Routing::Bgp { asn, neighbors } = &config.routing else {
            return Ok(None);
        };
        // The BGP identifier must be unique in the router's view; the
        // node's public address is.
        let router_id: Ipv4Addr = config.public_ipv4.parse().map_err(|_| {
            format!(
                "the node's address {} is not an IPv4 address",
                config.public_ipv4
            )
        })?;
        let mut speaker = SpeakerConfig::new(*asn, router_id);
        speaker.listen = Some(self.options.bgp_listen);
        for n in neighbors {
            let address: Ipv4Addr = n
                .address
                .parse()
                .map_err(|_| format!("the BGP neighbor {} is not an IPv4 address", n.address))?;
            let mut neighbor = NeighborConfig::new(address, n.asn);
            neighbor.connect_to = self
                .options
                .bgp_connect_port
                .map(|port| SocketAddr::new(address.into(), port));
            speaker.neighbors.push(neighbor);
        }
        Ok(Some(speaker))
    }

    /// Starts, reconfigures or stops the BGP speaker: `wanted` is the
    /// configuration's speaker ([`Self::speaker_config`]), none in manual
    /// routing.
    async fn apply_routing(&self, wanted: Option<SpeakerConfig>) -> Result<(), String> {
        let mut bgp = self.bgp.lock().await;
        match (wanted, bgp.as_ref()) {
            (None, None) => {}
            (None, Some(_)) => {
                if let Some(speaker) = bgp.take() {
                    speaker.shutdown().await;
                }
                self.routes.lock().await.reset();
                tracing::info!("BGP stopped: the node is in manual routing");
            }
            (Some(speaker_config), Some(speaker)) => {
                speaker
                    .reconfigure(speaker_config)
                    .await
                    .map_err(|e| format!("BGP: {e}"))?;
            }
            (Some(speaker_config), None) => {
                let listen = speaker_config.listen;
                let speaker = Speaker::start(speaker_config)
                    .await
                    .map_err(|e| match listen {
                        Some(addr) => format!("BGP: cannot start the speaker on {addr}: {e}"),
                        None => format!("BGP: {e}"),
                    })?;
                // A fresh speaker has a fresh table: the portal gets it whole.
                self.routes.lock().await.reset();
                let mut changes = speaker.subscribe();
                let report_soon = self.report_soon.clone();
                tokio::spawn(async move {
                    while changes.changed().await.is_ok() {
                        report_soon.notify_one();
                    }
                });
                tracing::info!(listen = ?listen, "BGP speaker started");
                *bgp = Some(speaker);
            }
        }
        Ok(())
    }

    async fn report_loop(self: Arc<Self>) {
        loop {
            if let Err(e) = self.send_report().await {
                tracing::warn!(error = %e, "report not delivered; its counters go with the next one");
            }
            let interval = jittered(self.report_interval_secs.load(Ordering::Relaxed));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.report_soon.notified() => {
                    // Let a burst of route changes settle into one report.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn send_report(&self) -> Result<(), PortalError> {
        let (report, routes_update) = self.build_report().await;
        let response = self.portal.report(&report).await?;
        let mut routes = self.routes.lock().await;
        match routes_update {
            Some(update) if response.send_full_routes => {
                tracing::info!(
                    base = ?update.update.base,
                    "the portal holds another version of the learned routes; sending all of them next"
                );
                routes.reset();
            }
            Some(update) => routes.confirmed(update),
            None => {}
        }
        Ok(())
    }

    async fn build_report(&self) -> (Report, Option<crate::routes::PendingUpdate>) {
        let counters = self.cache.counters();
        let health = self.cache.health();
        // A node disabled by its operator is not a problem to report: the
        // portal shows it as disabled.
        let mut problems: Vec<String> = health
            .problems
            .iter()
            .filter(|p| !matches!(p, lastmile_cache::Problem::Disabled))
            .map(ToString::to_string)
            .collect();
        let (bgp, update) = match self.bgp.lock().await.as_ref() {
            None => (None, None),
            Some(speaker) => {
                let peers = speaker.peers();
                for peer in &peers {
                    if peer.state != lastmile_bgp::SessionState::Established {
                        problems.push(format!(
                            "BGP session with {} is {}{}",
                            peer.address,
                            peer.state,
                            peer.last_error
                                .as_ref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        ));
                    }
                }
                let sessions = peers
                    .iter()
                    .map(|p| BgpSession {
                        neighbor: p.address.to_string(),
                        asn: p.remote_asn,
                        state: p.state.to_string(),
                        established_at_ms: p.established_since.and_then(|t| {
                            t.duration_since(std::time::UNIX_EPOCH)
                                .ok()
                                .map(|d| d.as_millis() as i64)
                        }),
                        last_error: p.last_error.clone(),
                        prefixes: p.prefixes_received as u64,
                    })
                    .collect();
                let pending = self.routes.lock().await.next_update(&speaker.routes());
                let routes = pending.as_ref().map(|p| p.update.clone());
                (Some(BgpReport { sessions, routes }), pending)
            }
        };
        let family = &counters.bytes_by_family;
        let report = Report {
            boot_id: self.boot_id.clone(),
            agent_version: AGENT_VERSION.to_string(),
            data_port: self.options.listen.port(),
            counters: Counters {
                requests: counters.requests,
                hit_bytes: counters.hit_bytes,
                miss_bytes: counters.miss_bytes,
                origin_bytes: counters.origin_bytes,
                errors: counters.errors,
                families: FamilyBytes {
                    windows_update: family.windows_update,
                    office: family.office,
                    xbox: family.xbox,
                    edge: family.edge,
                    other: family.other,
                },
            },
            active_connections: counters.active_connections,
            drives: counters
                .drives
                .iter()
                .map(|d| DriveUsage {
                    path: d.path.display().to_string(),
                    used_bytes: d.used_bytes,
                    quota_bytes: d.quota_bytes,
                })
                .collect(),
            serving: health.serving,
            problems,
            bgp,
        };
        (report, update)
    }
}
