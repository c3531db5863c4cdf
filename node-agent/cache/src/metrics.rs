//! Counters the data path keeps, their snapshot ([`Counters`]) and the
//! Prometheus text rendering the admin port serves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::ContentFamily;

/// A snapshot of the cache's counters. Counters (`u64` totals) only grow
/// from the moment the cache was opened; gauges (`active_connections`,
/// `drives`) are the current values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests answered (any status), data path only.
    pub requests: u64,
    /// Requests by response status.
    pub requests_by_status: BTreeMap<u16, u64>,
    /// Body bytes sent to clients from slices already on disk.
    pub hit_bytes: u64,
    /// Body bytes sent to clients from slices that were being fetched from
    /// the origin for them (including the clients that joined a fetch).
    pub miss_bytes: u64,
    /// Body bytes received from origins.
    pub origin_bytes: u64,
    /// Requests sent to origins (slice fetches and revalidations).
    pub origin_requests: u64,
    /// Requests that failed on our side or the origin's: 5xx answers, and
    /// responses cut short after their head was sent.
    pub errors: u64,
    /// Responses closed before their end because the object changed at the
    /// origin or its fetch failed (part of `errors`).
    pub cut_responses: u64,
    /// Slice fetches avoided because a fetch of the same slice was already
    /// running (its bytes were streamed to the newcomer).
    pub collapsed: u64,
    /// Slices evicted to stay under a drive's quota.
    pub evictions: u64,
    pub evicted_bytes: u64,
    /// Responses served from a stale copy because the origin could not be
    /// asked whether it changed.
    pub stale_served: u64,
    /// Body bytes sent to clients (hits and misses), by content family.
    pub bytes_by_family: FamilyBytes,
    /// Client connections open now.
    pub active_connections: u64,
    /// Slice fetches from origins running or queued now.
    pub fills_in_progress: u64,
    /// Each configured drive, in configuration order.
    pub drives: Vec<DriveUsage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyBytes {
    pub windows_update: u64,
    pub office: u64,
    pub xbox: u64,
    pub edge: u64,
    pub other: u64,
}

impl FamilyBytes {
    pub fn get(&self, family: ContentFamily) -> u64 {
        match family {
            ContentFamily::WindowsUpdate => self.windows_update,
            ContentFamily::Office => self.office,
            ContentFamily::Xbox => self.xbox,
            ContentFamily::Edge => self.edge,
            ContentFamily::Other => self.other,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveUsage {
    pub path: PathBuf,
    /// Bytes of slice files on the drive, plus the space reserved for fills
    /// in progress (never more than the quota).
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub writable: bool,
    /// Why the drive cannot be written, when it cannot.
    pub problem: Option<String>,
}

const STATUS_SLOTS: usize = 600;

pub(crate) struct Meters {
    status: Box<[AtomicU64]>,
    pub hit_bytes: AtomicU64,
    pub miss_bytes: AtomicU64,
    pub origin_bytes: AtomicU64,
    pub origin_requests: AtomicU64,
    pub errors: AtomicU64,
    pub cut_responses: AtomicU64,
    pub collapsed: AtomicU64,
    pub evictions: AtomicU64,
    pub evicted_bytes: AtomicU64,
    pub stale_served: AtomicU64,
    family: [AtomicU64; 5],
    pub active_connections: AtomicU64,
}

impl Meters {
    pub(crate) fn new() -> Meters {
        Meters {
            status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hit_bytes: AtomicU64::new(0),
            miss_bytes: AtomicU64::new(0),
            origin_bytes: AtomicU64::new(0),
            origin_requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            cut_responses: AtomicU64::new(0),
            collapsed: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            evicted_bytes: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
            family: Default::default(),
            active_connections: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_status(&self, status: u16) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        self.status[slot].fetch_add(1, Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn count_served(&self, family: ContentFamily, from_disk: bool, bytes: u64) {
        if from_disk {
            self.hit_bytes.fetch_add(bytes, Relaxed);
        } else {
            self.miss_bytes.fetch_add(bytes, Relaxed);
        }
        self.family[family.index()].fetch_add(bytes, Relaxed);
    }

    pub(crate) fn count_cut(&self) {
        self.cut_responses.fetch_add(1, Relaxed);
        self.errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self, drives: Vec<DriveUsage>) -> Counters {
        let requests_by_status: BTreeMap<u16, u64> = self
            .status
            .iter()
            .enumerate()
            .filter_map(|(status, n)| {
                let n = n.load(Relaxed);
                (n > 0).then_some((status as u16, n))
            })
            .collect();
        let family = |f: ContentFamily| self.family[f.index()].load(Relaxed);
        Counters {
            requests: requests_by_status.values().sum(),
            requests_by_status,
            hit_bytes: self.hit_bytes.load(Relaxed),
            miss_bytes: self.miss_bytes.load(Relaxed),
            origin_bytes: self.origin_bytes.load(Relaxed),
            origin_requests: self.origin_requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            cut_responses: self.cut_responses.load(Relaxed),
            collapsed: self.collapsed.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            evicted_bytes: self.evicted_bytes.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            bytes_by_family: FamilyBytes {
                windows_update: family(ContentFamily::WindowsUpdate),
                office: family(ContentFamily::Office),
                xbox: family(ContentFamily::Xbox),
                edge: family(ContentFamily::Edge),
                other: family(ContentFamily::Other),
            },
            active_connections: self.active_connections.load(Relaxed),
            fills_in_progress: 0,
            drives,
        }
    }
}

/// Prometheus text exposition (version 0.0.4) of a snapshot.
pub(crate) fn render_prometheus(counters: &Counters, healthy: bool) -> String {
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP lastmile_cache_{name} {help}");
        let _ = writeln!(out, "# TYPE lastmile_cache_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "lastmile_cache_{name}{labels} {value}");
        }
    };
    let plain = |v: u64| vec![(String::new(), v)];
    metric(
        "requests_total",
        "counter",
        "Data path requests answered, by status.",
        &counters
            .requests_by_status
            .iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), *n))
            .collect::<Vec<_>>(),
    );
    metric(
        "hit_bytes_total",
        "counter",
        "Body bytes served from disk.",
        &plain(counters.hit_bytes),
    );
    metric(
        "miss_bytes_total",
        "counter",
        "Body bytes served while being fetched from the origin.",
        &plain(counters.miss_bytes),
    );
    metric(
        "origin_bytes_total",
        "counter",
        "Body bytes received from origins.",
        &plain(counters.origin_bytes),
    );
    metric(
        "origin_requests_total",
        "counter",
        "Requests sent to origins.",
        &plain(counters.origin_requests),
    );
    metric(
        "errors_total",
        "counter",
        "5xx answers and responses cut short.",
        &plain(counters.errors),
    );
    metric(
        "cut_responses_total",
        "counter",
        "Responses closed early because the object changed or its fetch failed.",
        &plain(counters.cut_responses),
    );
    metric(
        "collapsed_total",
        "counter",
        "Slice fetches avoided by joining one already running.",
        &plain(counters.collapsed),
    );
    metric(
        "evictions_total",
        "counter",
        "Slices evicted to stay under quota.",
        &plain(counters.evictions),
    );
    metric(
        "evicted_bytes_total",
        "counter",
        "Bytes evicted to stay under quota.",
        &plain(counters.evicted_bytes),
    );
    metric(
        "stale_served_total",
        "counter",
        "Responses served stale because the origin could not be reached.",
        &plain(counters.stale_served),
    );
    metric(
        "served_bytes_total",
        "counter",
        "Body bytes served to clients, by content family.",
        &ContentFamily::ALL
            .iter()
            .map(|f| {
                (
                    format!("{{family=\"{}\"}}", f.as_str()),
                    counters.bytes_by_family.get(*f),
                )
            })
            .collect::<Vec<_>>(),
    );
    metric(
        "active_connections",
        "gauge",
        "Client connections open now.",
        &plain(counters.active_connections),
    );
    metric(
        "fills_in_progress",
        "gauge",
        "Slice fetches from origins running or queued now.",
        &plain(counters.fills_in_progress),
    );
    let drive_label = |d: &DriveUsage| {
        format!(
            "{{drive=\"{}\"}}",
            escape_label(&d.path.display().to_string())
        )
    };
    metric(
        "drive_used_bytes",
        "gauge",
        "Bytes used on each cache drive.",
        &counters
            .drives
            .iter()
            .map(|d| (drive_label(d), d.used_bytes))
            .collect::<Vec<_>>(),
    );
    metric(
        "drive_quota_bytes",
        "gauge",
        "Quota of each cache drive.",
        &counters
            .drives
            .iter()
            .map(|d| (drive_label(d), d.quota_bytes))
            .collect::<Vec<_>>(),
    );
    metric(
        "drive_writable",
        "gauge",
        "1 when the drive can be written.",
        &counters
            .drives
            .iter()
            .map(|d| (drive_label(d), u64::from(d.writable)))
            .collect::<Vec<_>>(),
    );
    metric(
        "healthy",
        "gauge",
        "1 when the node can serve.",
        &plain(u64::from(healthy)),
    );
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_rendering() {
        let m = Meters::new();
        m.count_status(206);
        m.count_status(206);
        m.count_status(503);
        m.count_served(ContentFamily::Xbox, true, 10);
        m.count_served(ContentFamily::Xbox, false, 5);
        let c = m.snapshot(vec![DriveUsage {
            path: "/srv/a\"b".into(),
            used_bytes: 1,
            quota_bytes: 2,
            writable: true,
            problem: None,
        }]);
        assert_eq!(c.requests, 3);
        assert_eq!(c.requests_by_status.get(&206), Some(&2));
        assert_eq!(c.errors, 1);
        assert_eq!(c.hit_bytes, 10);
        assert_eq!(c.miss_bytes, 5);
        assert_eq!(c.bytes_by_family.xbox, 15);
        let text = render_prometheus(&c, true);
        assert!(text.contains("lastmile_cache_requests_total{status=\"206\"} 2\n"));
        assert!(text.contains("lastmile_cache_served_bytes_total{family=\"xbox\"} 15\n"));
        assert!(text.contains("lastmile_cache_drive_quota_bytes{drive=\"/srv/a\\\"b\"} 2\n"));
        assert!(text.contains("lastmile_cache_healthy 1\n"));
    }
}
