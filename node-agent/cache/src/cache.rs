//! The cache: the configuration in force, the index of the slices on the
//! drives (one lock, held only for map operations, never across I/O), the
//! fills in progress, and the quota bookkeeping.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{validate, ActiveConfig, ApplyError, CacheConfig, DriveConfig};
use crate::eviction::{EvictionPolicy, S3Fifo};
use crate::fill::{interpret, now_ns, run_fill, Fetched, Fill, FillFailure, Observation, Phase};
use crate::key::{KeyHash, ObjectTarget};
use crate::limiter::EgressLimiter;
use crate::metrics::{Counters, DriveUsage, Meters};
use crate::origin::{OriginClient, OriginError, OriginResponse};
use crate::store::{
    check_drive, probe_writable, remove_file_quietly, scan_drive, slice_file_bytes, verify_slice,
    DriveShared, FoundSlice, Version,
};

/// After an origin could not be asked whether a stale object changed, the
/// stale copy is served this long before asking again.
const STALE_RETRY: Duration = Duration::from_secs(10);
/// The longest freshness taken from an origin.
const MAX_FRESHNESS: Duration = Duration::from_secs(365 * 24 * 3600);
/// How often failed drives are tested again.
const DRIVE_RECHECK: Duration = Duration::from_secs(30);
/// A fill that finds its drive full of fills in progress retries this often...
const ROOM_RETRY_DELAY: Duration = Duration::from_millis(20);
/// ...this many times.
const ROOM_RETRIES: u32 = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SliceId {
    pub key: KeyHash,
    pub index: u64,
}

/// Whether the node can serve, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// True when the data path serves: enabled, with at least one writable drive.
    pub serving: bool,
    /// Everything an operator should know, also when still serving (a
    /// failed drive among several).
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The configuration disables the cache.
    Disabled,
    /// No configured drive can be written.
    NoWritableDrive,
    /// A drive failed a write; it is tested again every 30 seconds.
    DriveFailed { path: PathBuf, reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Disabled => write!(f, "cache disabled in configuration"),
            Problem::NoWritableDrive => write!(f, "no writable cache drive"),
            Problem::DriveFailed { path, reason } => {
                write!(f, "cache drive {} failed: {reason}", path.display())
            }
        }
    }
}

/// What a data path request finds for one slice.
pub(crate) enum SliceSource {
    /// On disk, opened (and checked, the first time after a restart).
    Disk(File),
    /// Being fetched; `joined` when someone else started the fetch.
    Fill(Arc<Fill>),
    /// The cache now holds another version of the object than the one the
    /// response started with.
    Changed,
}

enum Started {
    /// Started now, or joined.
    Fill(Arc<Fill>),
    OnDisk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// Every writable drive is full of fills in progress.
    Full,
    NoWritableDrive,
}

pub(crate) struct ObjectView {
    pub version: Arc<Version>,
    pub fresh: bool,
}

struct Object {
    version: Arc<Version>,
    /// When an answer with this identity first came back: an answer with
    /// another identity replaces it only if its request left later.
    first_seen_ns: u64,
    fresh_until: Instant,
    /// Slices of it in the index; the object is forgotten at zero.
    slices: u64,
}

struct DriveState {
    shared: Arc<DriveShared>,
    quota: u64,
    /// The drive's slices; its byte count is the drive's published usage.
    policy: S3Fifo<SliceId>,
}

impl DriveState {
    fn usage(&self) -> u64 {
        self.policy.bytes()
            + self.shared.reserved.load(Ordering::Acquire)
            + self.shared.deleting.load(Ordering::Acquire)
    }
}

/// What became of a finished slice.
enum Publish {
    Stored,
    /// The same slice was stored under the same name meanwhile.
    AlreadyThere,
    /// A newer version won, or the drive left: the file must go.
    Refused,
}

/// A file leaving the cache, counted against its drive until it is gone.
struct Doomed {
    drive: Arc<DriveShared>,
    path: PathBuf,
    bytes: u64,
}

type ProbeCell = OnceCell<Result<Arc<Version>, FillFailure>>;

#[derive(Default)]
struct State {
    drives: Vec<DriveState>,
    objects: HashMap<KeyHash, Object>,
    inflight: HashMap<SliceId, Arc<Fill>>,
    /// Slices found at start-up whose data has not been checked yet.
    unverified: HashSet<SliceId>,
    probes: HashMap<KeyHash, Arc<ProbeCell>>,
    next_drive_id: u32,
}

/// The cache. Open it with [`Cache::open`]; serve it with [`crate::serve`]
/// and [`crate::serve_admin`].
pub struct Cache {
    config: RwLock<Arc<ActiveConfig>>,
    state: Mutex<State>,
    pub(crate) meters: Meters,
    origin: OriginClient,
    pub(crate) limiter: EgressLimiter,
    fill_permits: Arc<Semaphore>,
    fill_permit_total: Mutex<usize>,
    apply_lock: tokio::sync::Mutex<()>,
    tmp_names: AtomicU64,
}

fn freshness_deadline(fresh_for: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(fresh_for.min(MAX_FRESHNESS)).unwrap_or(now)
}

impl Cache {
    /// Opens the cache: checks the drives, rebuilds the index from the slice
    /// files on them (leftovers of interrupted fills are deleted) and starts
    /// a background task that re-tests failed drives. Must run inside a
    /// tokio runtime. A cache that cannot be opened with its configuration
    /// can be opened with `CacheConfig::default()` (disabled) and given the
    /// real one later with [`Cache::apply`].
    pub async fn open(config: CacheConfig) -> Result<Arc<Cache>, ApplyError> {
        let cache = Arc::new(Cache {
            config: RwLock::new(Arc::new(validate(&CacheConfig::default())?)),
            state: Mutex::new(State::default()),
            meters: Meters::new(),
            origin: OriginClient::default(),
            limiter: EgressLimiter::new(None),
            fill_permits: Arc::new(Semaphore::new(0)),
            fill_permit_total: Mutex::new(0),
            apply_lock: tokio::sync::Mutex::new(()),
            tmp_names: AtomicU64::new(0),
        });
        cache.apply(config).await?;
        tokio::spawn(recheck_drives(Arc::downgrade(&cache)));
        Ok(cache)
    }

    /// Replaces the configuration while serving. Every drive is checked
    /// first (present, a folder, writable, its filesystem at least as large
    /// as its quota); on any error nothing changes and the error names the
    /// reason. New drives are scanned and their slices join the index;
    /// removed drives leave it (their files stay on disk); a lowered quota
    /// evicts at once.
    pub async fn apply(&self, config: CacheConfig) -> Result<(), ApplyError> {
        let _one_at_a_time = self.apply_lock.lock().await;
        let active = Arc::new(validate(&config)?);
        let known: HashSet<PathBuf> = self
            .lock()
            .drives
            .iter()
            .map(|d| d.shared.path.clone())
            .collect();
        let drives = config.drives.clone();
        let checked = tokio::task::spawn_blocking(move || check_and_scan(drives, &known))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;

        let mut doomed = Vec::new();
        {
            let mut state = self.lock();
            let mut previous: Vec<DriveState> = std::mem::take(&mut state.drives);
            let mut adopted = Vec::new();
            for (drive_config, found) in checked {
                let existing = previous
                    .iter()
                    .position(|d| d.shared.path == drive_config.path)
                    .map(|i| previous.swap_remove(i));
                let mut drive = existing.unwrap_or_else(|| {
                    let id = state.next_drive_id;
                    state.next_drive_id += 1;
                    DriveState {
                        shared: Arc::new(DriveShared::new(id, drive_config.path.clone())),
                        quota: 0,
                        policy: S3Fifo::default(),
                    }
                });
                drive.quota = drive_config.quota_bytes;
                drive.policy.set_capacity(drive_config.quota_bytes);
                // The check just wrote to it.
                drive.shared.writable.store(true, Ordering::Release);
                *drive.shared.problem.lock().expect("problem lock") = None;
                if let Some(found) = found {
                    adopted.push((state.drives.len(), found));
                }
                state.drives.push(drive);
            }
            for mut retired in previous {
                retired.shared.retired.store(true, Ordering::Release);
                while let Some((id, _)) = retired.policy.evict() {
                    state.slice_gone(id);
                }
            }
            for (index, found) in adopted {
                doomed.extend(state.adopt(index, found));
            }
            for index in 0..state.drives.len() {
                let (_, evicted) = state.make_room(index, 0, &self.meters);
                doomed.extend(evicted);
            }
            *self.config.write().expect("config lock") = active;
        }
        self.limiter.set_limit(config.egress_limit_bits_per_sec);
        self.resize_fill_permits(config.max_concurrent_fills);
        self.delete_later(doomed);
        Ok(())
    }

    /// Whether the node can serve now, and every problem it knows of.
    pub fn health(&self) -> Health {
        let enabled = self.active().enabled;
        let state = self.lock();
        let mut problems = Vec::new();
        if !enabled {
            problems.push(Problem::Disabled);
        }
        let mut writable = 0;
        for drive in &state.drives {
            if drive.shared.writable.load(Ordering::Acquire) {
                writable += 1;
            } else {
                problems.push(Problem::DriveFailed {
                    path: drive.shared.path.clone(),
                    reason: drive
                        .shared
                        .problem
                        .lock()
                        .expect("problem lock")
                        .clone()
                        .unwrap_or_default(),
                });
            }
        }
        if enabled && writable == 0 {
            problems.push(Problem::NoWritableDrive);
        }
        Health {
            serving: enabled && writable > 0,
            problems,
        }
    }

    /// The counters since the cache was opened, and current gauges.
    pub fn counters(&self) -> Counters {
        let state = self.lock();
        let fills_in_progress = state.inflight.len() as u64;
        let drives = state
            .drives
            .iter()
            .map(|d| DriveUsage {
                path: d.shared.path.clone(),
                used_bytes: d.usage(),
                quota_bytes: d.quota,
                writable: d.shared.writable.load(Ordering::Acquire),
                problem: d.shared.problem.lock().expect("problem lock").clone(),
            })
            .collect();
        drop(state);
        let mut counters = self.meters.snapshot(drives);
        counters.fills_in_progress = fills_in_progress;
        counters
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("cache index lock")
    }

    pub(crate) fn active(&self) -> Arc<ActiveConfig> {
        self.config.read().expect("config lock").clone()
    }

    fn resize_fill_permits(&self, wanted: usize) {
        let mut total = self.fill_permit_total.lock().expect("permit lock");
        if wanted > *total {
            self.fill_permits.add_permits(wanted - *total);
            *total = wanted;
        } else if wanted < *total {
            // Permits in use are not taken back; the next apply tries again.
            *total -= self.fill_permits.forget_permits(*total - wanted);
        }
    }

    pub(crate) async fn fill_permit(&self) -> OwnedSemaphorePermit {
        self.fill_permits
            .clone()
            .acquire_owned()
            .await
            .expect("the fill semaphore is never closed")
    }

    pub(crate) async fn origin_get(
        &self,
        target: &ObjectTarget,
        range: Option<(u64, u64)>,
    ) -> Result<OriginResponse, OriginError> {
        let config = self.active();
        self.meters.origin_requests.fetch_add(1, Ordering::Relaxed);
        self.origin
            .get(&config.origin, &target.host, &target.origin_path, range)
            .await
    }

    pub(crate) fn count_origin_bytes(&self, bytes: u64) {
        self.meters.origin_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn object_view(&self, key: KeyHash) -> Option<ObjectView> {
        let state = self.lock();
        state.objects.get(&key).map(|o| ObjectView {
            version: o.version.clone(),
            fresh: Instant::now() < o.fresh_until,
        })
    }

    /// Whether the index's version of the object is `version`.
    pub(crate) fn holds_version(&self, key: KeyHash, version: &Version) -> bool {
        self.lock()
            .objects
            .get(&key)
            .is_some_and(|o| o.version.same_as(version))
    }

    pub(crate) fn slice_cached(&self, key: KeyHash, version: &Version, index: u64) -> bool {
        let state = self.lock();
        let id = SliceId { key, index };
        state
            .objects
            .get(&key)
            .is_some_and(|o| o.version.same_as(version))
            && state.drives.iter().any(|d| d.policy.contains(&id))
    }

    /// The origin could not say whether the object changed: keep serving
    /// the copy for a while before asking again.
    pub(crate) fn defer_revalidation(&self, key: KeyHash) {
        if let Some(object) = self.lock().objects.get_mut(&key) {
            object.fresh_until = freshness_deadline(STALE_RETRY);
        }
    }

    /// The origin says the object is gone.
    pub(crate) fn forget(&self, key: KeyHash) {
        let doomed = self.lock().drop_object(key);
        self.delete_later(doomed);
    }

    /// Records what an origin said about an object: the same identity
    /// extends its freshness; another identity, asked for after the cached
    /// one was seen, drops the cached copy (see [`Observation`]). Returns
    /// the cached version when the identity matched.
    pub(crate) fn observe(
        &self,
        target: &ObjectTarget,
        version: &Version,
        seen: Observation,
        freshness: Option<Duration>,
    ) -> Option<Arc<Version>> {
        let fresh_for = freshness.unwrap_or(self.active().default_freshness);
        let mut doomed = Vec::new();
        let matched = {
            let mut state = self.lock();
            match state.objects.get_mut(&target.hash) {
                Some(object) if object.version.identity == version.identity => {
                    object.fresh_until = freshness_deadline(fresh_for);
                    Some(object.version.clone())
                }
                Some(object) if seen.requested_at_ns > object.first_seen_ns => {
                    tracing::info!(
                        key = %target.key,
                        old = ?object.version.identity,
                        new = ?version.identity,
                        "object changed at the origin; dropping the cached copy"
                    );
                    doomed = state.drop_object(target.hash);
                    // Keep the new identity (with no slices yet), so that a
                    // fetch of the old one finishing later is not stored.
                    state.objects.insert(
                        target.hash,
                        Object {
                            version: Arc::new(version.clone()),
                            first_seen_ns: seen.answered_at_ns,
                            fresh_until: freshness_deadline(fresh_for),
                            slices: 0,
                        },
                    );
                    None
                }
                _ => None,
            }
        };
        self.delete_later(doomed);
        matched
    }

    /// Finds slice `index` of `version`: on disk, or being fetched (joining
    /// a fetch in progress, or starting one).
    pub(crate) async fn open_slice(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        version: &Arc<Version>,
        index: u64,
    ) -> Result<SliceSource, NoRoom> {
        loop {
            if let Some(source) = self.open_on_disk(target, version, index).await {
                return Ok(source);
            }
            if let Some(fill) = self
                .fill_slice(target, index, version.slice_size, Some(version))
                .await?
            {
                return Ok(SliceSource::Fill(fill));
            }
            // Published between the two looks: go read it from disk.
        }
    }

    /// The slice from disk (checked first if it was found at start-up), or
    /// `Changed`, or `None` when it is not on disk (any more).
    async fn open_on_disk(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        version: &Arc<Version>,
        index: u64,
    ) -> Option<SliceSource> {
        let id = SliceId {
            key: target.hash,
            index,
        };
        let (drive, path, unverified) = {
            let mut state = self.lock();
            let tag = match state.objects.get(&id.key) {
                Some(object) if !object.version.same_as(version) => {
                    return Some(SliceSource::Changed)
                }
                Some(object) => object.version.tag(),
                None => return None,
            };
            let unverified = state.unverified.contains(&id);
            state.drives.iter_mut().find_map(|d| {
                d.policy.touch(&id).then(|| {
                    (
                        d.shared.clone(),
                        d.shared.slice_path(id.key, tag, index),
                        unverified,
                    )
                })
            })?
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open a cached slice");
                }
                self.discard_slice(id, &drive, path);
                return None;
            }
        };
        if !unverified {
            return Some(SliceSource::Disk(file));
        }
        let expected = version.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let good = verify_slice(&file, &expected, index);
            (file, good)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        match checked {
            (file, Ok(true)) => {
                self.lock().unverified.remove(&id);
                Some(SliceSource::Disk(file))
            }
            (_, result) => {
                tracing::warn!(
                    path = %path.display(),
                    error = ?result.err(),
                    "cached slice failed its check; fetching it again"
                );
                self.discard_slice(id, &drive, path);
                None
            }
        }
    }

    fn discard_slice(&self, id: SliceId, drive: &Arc<DriveShared>, path: PathBuf) {
        let mut doomed = Vec::new();
        {
            let mut state = self.lock();
            if let Some(d) = state.drives.iter_mut().find(|d| d.shared.id == drive.id) {
                if let Some(bytes) = d.policy.remove(&id) {
                    drive.deleting.fetch_add(bytes, Ordering::AcqRel);
                    doomed.push(Doomed {
                        drive: drive.clone(),
                        path,
                        bytes,
                    });
                    state.slice_gone(id);
                }
            }
        }
        self.delete_later(doomed);
    }

    /// Joins the fetch of a slice in progress, or starts one; `None` when
    /// the slice (of `version`, if given) reached the disk meanwhile. Waits
    /// a while for room when every drive is full of fetches in progress.
    pub(crate) async fn fill_slice(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        index: u64,
        slice_size: u64,
        version: Option<&Version>,
    ) -> Result<Option<Arc<Fill>>, NoRoom> {
        let mut tries = 0;
        loop {
            match self.try_start_fill(target, index, slice_size, version) {
                Ok(Started::Fill(fill)) => return Ok(Some(fill)),
                Ok(Started::OnDisk) => return Ok(None),
                Err(NoRoom::Full) if tries < ROOM_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(ROOM_RETRY_DELAY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts fetching a slice a response will need next, unless it is on
    /// disk; returns the fetch (started now or already running).
    pub(crate) fn prefetch(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        version: &Version,
        index: u64,
    ) -> Option<Arc<Fill>> {
        if index * version.slice_size >= version.len() {
            return None;
        }
        match self.try_start_fill(target, index, version.slice_size, Some(version)) {
            Ok(Started::Fill(fill)) => Some(fill),
            Ok(Started::OnDisk) | Err(_) => None,
        }
    }

    fn try_start_fill(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        index: u64,
        slice_size: u64,
        version: Option<&Version>,
    ) -> Result<Started, NoRoom> {
        let id = SliceId {
            key: target.hash,
            index,
        };
        let mut state = self.lock();
        let object_matches = state
            .objects
            .get(&id.key)
            .is_some_and(|o| version.is_none_or(|v| o.version.same_as(v)));
        if object_matches && state.drives.iter().any(|d| d.policy.contains(&id)) {
            return Ok(Started::OnDisk);
        }
        if let Some(fill) = state.inflight.get(&id) {
            // A fetch that answered with another version than the one asked
            // for (a late answer from before the object changed) is no use:
            // a new fetch takes its place in the map, and it finishes for
            // its own waiters.
            let same_version = match (version, fill.version()) {
                (Some(wanted), Some(answered)) => answered.same_as(wanted),
                _ => true,
            };
            if same_version && !fill.has_failed() {
                self.meters.collapsed.fetch_add(1, Ordering::Relaxed);
                return Ok(Started::Fill(fill.clone()));
            }
        }
        let need = slice_file_bytes(slice_size);
        let candidates = state.ranked_drives(id);
        if candidates.is_empty() {
            return Err(NoRoom::NoWritableDrive);
        }
        let mut doomed = Vec::new();
        let mut chosen = None;
        for index in candidates {
            let (fits, evicted) = state.make_room(index, need, &self.meters);
            doomed.extend(evicted);
            if fits {
                chosen = Some(index);
                break;
            }
        }
        let evictions = self.delete_later(doomed);
        let Some(chosen) = chosen else {
            return Err(NoRoom::Full);
        };
        let drive = state.drives[chosen].shared.clone();
        drive.reserved.fetch_add(need, Ordering::AcqRel);
        let tmp_path = drive.tmp_dir().join(format!(
            "{}-{}.part",
            std::process::id(),
            self.tmp_names.fetch_add(1, Ordering::Relaxed)
        ));
        let fill = Arc::new(Fill::new(
            id,
            target.clone(),
            slice_size,
            drive,
            need,
            tmp_path,
            evictions,
        ));
        state.inflight.insert(id, fill.clone());
        drop(state);
        let task = tokio::spawn(run_fill(self.clone(), fill.clone()));
        fill.set_task(task.abort_handle());
        Ok(Started::Fill(fill))
    }

    /// A fetch finished: publish the slice (rename into place, add to the
    /// index) unless it may not be stored or a newer version won meanwhile.
    pub(crate) fn complete_fill(&self, fill: &Arc<Fill>, fetched: Fetched) {
        if !fill.settle() {
            return;
        }
        let mut doomed = Vec::new();
        let final_path = fill
            .drive
            .slice_path(fill.id.key, fetched.version.tag(), fill.id.index);
        let placed = fetched.storable
            && !fill.drive.retired.load(Ordering::Acquire)
            && match rename_into_place(&fill.tmp_path, &final_path) {
                Ok(()) => true,
                Err(e) => {
                    self.drive_failed(&fill.drive, &format!("cannot publish a slice: {e}"));
                    false
                }
            };
        {
            let mut state = self.lock();
            if state
                .inflight
                .get(&fill.id)
                .is_some_and(|f| Arc::ptr_eq(f, fill))
            {
                state.inflight.remove(&fill.id);
            }
            if placed {
                match state.publish(fill, &fetched, &mut doomed, &self.active()) {
                    Publish::Stored => fill.published.store(true, Ordering::Release),
                    Publish::AlreadyThere => {}
                    Publish::Refused => {
                        let bytes =
                            slice_file_bytes(fetched.file_len - crate::store::SLICE_HEADER_BYTES);
                        fill.drive.deleting.fetch_add(bytes, Ordering::AcqRel);
                        doomed.push(Doomed {
                            drive: fill.drive.clone(),
                            path: final_path,
                            bytes,
                        });
                    }
                }
            }
        }
        fill.progress.send_modify(|p| p.phase = Phase::Done);
        self.delete_later(doomed);
    }

    pub(crate) fn fail_fill(&self, fill: &Arc<Fill>, failure: FillFailure) {
        if !fill.settle() {
            return;
        }
        {
            let mut state = self.lock();
            if state
                .inflight
                .get(&fill.id)
                .is_some_and(|f| Arc::ptr_eq(f, fill))
            {
                state.inflight.remove(&fill.id);
            }
        }
        tracing::debug!(key = %fill.target.key, slice = fill.id.index, ?failure, "slice fetch failed");
        fill.progress
            .send_modify(|p| p.phase = Phase::Failed(failure));
    }

    /// A waiter saw no progress for too long: stop the fetch so that the
    /// next one replaces it.
    pub(crate) fn abandon_fill(&self, fill: &Arc<Fill>) {
        fill.abort_task();
        self.fail_fill(fill, FillFailure::Abandoned);
    }

    pub(crate) fn drive_failed(&self, drive: &DriveShared, reason: &str) {
        tracing::warn!(drive = %drive.path.display(), reason, "cache drive failed; not writing to it");
        *drive.problem.lock().expect("problem lock") = Some(reason.to_string());
        drive.writable.store(false, Ordering::Release);
    }

    /// Asks the origin for the object's identity (a one-byte range request),
    /// one request at a time per object however many clients ask.
    pub(crate) async fn probe(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        slice_size: u64,
    ) -> Result<Arc<Version>, FillFailure> {
        let cell = self.lock().probe_cell(target.hash);
        let result = cell
            .get_or_init(|| self.probe_origin(target, slice_size))
            .await
            .clone();
        let mut state = self.lock();
        if state
            .probes
            .get(&target.hash)
            .is_some_and(|c| Arc::ptr_eq(c, &cell))
        {
            state.probes.remove(&target.hash);
        }
        result
    }

    async fn probe_origin(
        self: &Arc<Self>,
        target: &Arc<ObjectTarget>,
        slice_size: u64,
    ) -> Result<Arc<Version>, FillFailure> {
        let requested_at_ns = now_ns();
        let response = self
            .origin_get(target, Some((0, 0)))
            .await
            .map_err(FillFailure::Origin)?;
        let seen = Observation {
            requested_at_ns,
            answered_at_ns: now_ns(),
        };
        match interpret(response, 0, slice_size).await {
            Ok((answer, mut response)) => {
                // A 206 of one byte is read to its end (the connection goes
                // back to the pool); a 200 is the whole object: dropped.
                if answer.last_byte.is_some() {
                    let stall = self.active().origin.stall_timeout;
                    while let Ok(Some(chunk)) = response.chunk(stall).await {
                        self.count_origin_bytes(chunk.len() as u64);
                    }
                }
                let cached = self.observe(target, &answer.version, seen, answer.freshness);
                Ok(cached.unwrap_or_else(|| Arc::new(answer.version)))
            }
            Err(FillFailure::Unsatisfiable { len: 0 }) => {
                Ok(Arc::new(Version::length_only(0, slice_size)))
            }
            Err(failure) => Err(failure),
        }
    }

    /// Deletes files on the blocking pool; their bytes count against their
    /// drive until they are gone.
    fn delete_later(&self, doomed: Vec<Doomed>) -> Option<JoinHandle<()>> {
        if doomed.is_empty() {
            return None;
        }
        Some(tokio::task::spawn_blocking(move || {
            for d in doomed {
                remove_file_quietly(&d.path);
                d.drive.deleting.fetch_sub(d.bytes, Ordering::AcqRel);
            }
        }))
    }
}

impl State {
    /// The probe of `key` in progress, or a new one. A finished probe left
    /// behind (its client went away before removing it) is old news and is
    /// replaced.
    fn probe_cell(&mut self, key: KeyHash) -> Arc<ProbeCell> {
        let cell = self.probes.entry(key).or_default();
        if cell.initialized() {
            *cell = Arc::default();
        }
        cell.clone()
    }

    /// Writable drives, best first for this slice (rendezvous hashing
    /// weighted by quota, so slices spread over drives in proportion).
    fn ranked_drives(&self, id: SliceId) -> Vec<usize> {
        let mut scored: Vec<(f64, usize)> = self
            .drives
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.shared.writable.load(Ordering::Acquire)
                    && !d.shared.retired.load(Ordering::Acquire)
            })
            .map(|(i, d)| {
                let mut h = DefaultHasher::new();
                (id.key, id.index, d.shared.id).hash(&mut h);
                let unit = ((h.finish() >> 11) as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
                (-(d.quota as f64) / unit.ln(), i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(_, i)| i).collect()
    }

    /// Evicts from drive `index` until `extra` more bytes fit under its
    /// quota. Returns whether they fit, and the files to delete.
    fn make_room(&mut self, index: usize, extra: u64, meters: &Meters) -> (bool, Vec<Doomed>) {
        let mut doomed = Vec::new();
        loop {
            let drive = &mut self.drives[index];
            if drive.usage() + extra <= drive.quota {
                return (true, doomed);
            }
            let Some((id, bytes)) = drive.policy.evict() else {
                return (false, doomed);
            };
            let shared = drive.shared.clone();
            meters.evictions.fetch_add(1, Ordering::Relaxed);
            meters.evicted_bytes.fetch_add(bytes, Ordering::Relaxed);
            if let Some(object) = self.objects.get(&id.key) {
                shared.deleting.fetch_add(bytes, Ordering::AcqRel);
                doomed.push(Doomed {
                    path: shared.slice_path(id.key, object.version.tag(), id.index),
                    drive: shared,
                    bytes,
                });
            }
            self.slice_gone(id);
        }
    }

    /// A slice left the index: the object forgets it.
    fn slice_gone(&mut self, id: SliceId) {
        self.unverified.remove(&id);
        if let Some(object) = self.objects.get_mut(&id.key) {
            object.slices = object.slices.saturating_sub(1);
            if object.slices == 0 {
                self.objects.remove(&id.key);
            }
        }
    }

    /// Forgets an object and returns its files for deletion.
    fn drop_object(&mut self, key: KeyHash) -> Vec<Doomed> {
        let Some(object) = self.objects.remove(&key) else {
            return Vec::new();
        };
        let tag = object.version.tag();
        let count = object.version.len().div_ceil(object.version.slice_size);
        let mut doomed = Vec::new();
        let mut remaining = object.slices;
        for index in 0..count {
            if remaining == 0 {
                break;
            }
            let id = SliceId { key, index };
            self.unverified.remove(&id);
            for drive in &mut self.drives {
                if let Some(bytes) = drive.policy.remove(&id) {
                    remaining -= 1;
                    drive.shared.deleting.fetch_add(bytes, Ordering::AcqRel);
                    doomed.push(Doomed {
                        drive: drive.shared.clone(),
                        path: drive.shared.slice_path(key, tag, index),
                        bytes,
                    });
                }
            }
        }
        doomed
    }

    /// Adds a finished slice (already renamed into place) to the index.
    fn publish(
        &mut self,
        fill: &Fill,
        fetched: &Fetched,
        doomed: &mut Vec<Doomed>,
        config: &ActiveConfig,
    ) -> Publish {
        let Some(drive_index) = self
            .drives
            .iter()
            .position(|d| d.shared.id == fill.drive.id)
        else {
            return Publish::Refused;
        };
        let key = fill.id.key;
        match self.objects.get(&key) {
            Some(object) if object.version.same_as(&fetched.version) => {}
            // A stale answer from a request sent before the cached
            // identity was seen.
            Some(object) if fetched.seen.requested_at_ns <= object.first_seen_ns => {
                return Publish::Refused
            }
            Some(_) => doomed.extend(self.drop_object(key)),
            None => {}
        }
        if let Some(holder) = self.drives.iter().position(|d| d.policy.contains(&fill.id)) {
            // Published by an earlier fill: on this drive under the same
            // name (with the same bytes), so the file is the index's now;
            // on another drive, ours is a spare.
            return if holder == drive_index {
                Publish::AlreadyThere
            } else {
                Publish::Refused
            };
        }
        let object = self.objects.entry(key).or_insert_with(|| Object {
            version: fetched.version.clone(),
            first_seen_ns: fetched.seen.answered_at_ns,
            fresh_until: freshness_deadline(fetched.fresh_for.unwrap_or(config.default_freshness)),
            slices: 0,
        });
        object.slices += 1;
        let drive = &mut self.drives[drive_index];
        drive.policy.insert(
            fill.id,
            slice_file_bytes(fetched.file_len - crate::store::SLICE_HEADER_BYTES),
        );
        drive
            .shared
            .reserved
            .fetch_sub(fill.reservation, Ordering::AcqRel);
        Publish::Stored
    }

    /// Adds the slices found on a drive at start-up. For each key the newest
    /// identity wins (here and against other drives); the rest is deleted.
    fn adopt(&mut self, drive_index: usize, mut found: Vec<FoundSlice>) -> Vec<Doomed> {
        found.sort_by_key(|s| s.header.observed_at_ns);
        // Per key: the identity of the latest answer, when that was, and
        // when this identity was first seen.
        let mut newest: HashMap<KeyHash, (Version, u64, u64)> = HashMap::new();
        for slice in &found {
            let at = slice.header.observed_at_ns;
            let version = slice.header.version();
            match newest.get_mut(&slice.header.key) {
                Some((known, latest, _)) if known.same_as(&version) => *latest = at,
                _ => {
                    newest.insert(slice.header.key, (version, at, at));
                }
            }
        }
        let mut doomed = Vec::new();
        let now = Instant::now();
        for (key, (version, latest_ns, first_seen_ns)) in newest {
            match self.objects.get(&key) {
                Some(object) if object.version.same_as(&version) => continue,
                Some(object) if object.first_seen_ns >= latest_ns => continue,
                Some(_) => doomed.extend(self.drop_object(key)),
                None => {}
            }
            self.objects.insert(
                key,
                Object {
                    version: Arc::new(version),
                    first_seen_ns,
                    // Unknown since when: ask the origin before serving.
                    fresh_until: now,
                    slices: 0,
                },
            );
        }
        let shared = self.drives[drive_index].shared.clone();
        for slice in found {
            let id = SliceId {
                key: slice.header.key,
                index: slice.header.index,
            };
            let wanted = self
                .objects
                .get(&id.key)
                .is_some_and(|o| o.version.same_as(&slice.header.version()))
                && !self.drives.iter().any(|d| d.policy.contains(&id));
            if wanted {
                self.drives[drive_index].policy.insert(id, slice.file_bytes);
                self.unverified.insert(id);
                if let Some(object) = self.objects.get_mut(&id.key) {
                    object.slices += 1;
                }
            } else {
                shared
                    .deleting
                    .fetch_add(slice.file_bytes, Ordering::AcqRel);
                doomed.push(Doomed {
                    drive: shared.clone(),
                    path: slice.path,
                    bytes: slice.file_bytes,
                });
            }
        }
        self.objects.retain(|_, o| o.slices > 0);
        doomed
    }
}

fn rename_into_place(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(from, to)
        }
        other => other,
    }
}

/// Checks every configured drive and scans the ones not in use yet
/// (blocking). Drives must not repeat or nest.
/// A drive that passed its checks, with what was found on it if it is new.
type CheckedDrive = (DriveConfig, Option<Vec<FoundSlice>>);

fn check_and_scan(
    drives: Vec<DriveConfig>,
    known: &HashSet<PathBuf>,
) -> Result<Vec<CheckedDrive>, ApplyError> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut checked = Vec::new();
    for drive in drives {
        check_drive(&drive)?;
        let canonical = drive
            .path
            .canonicalize()
            .unwrap_or_else(|_| drive.path.clone());
        if seen
            .iter()
            .any(|other| other.starts_with(&canonical) || canonical.starts_with(other))
        {
            return Err(ApplyError::DriveOverlaps { path: drive.path });
        }
        seen.push(canonical);
        let found = if known.contains(&drive.path) {
            None
        } else {
            let root = drive.path.join("lastmile-cache");
            let (found, removed) = scan_drive(&root).map_err(|e| ApplyError::DriveUnreadable {
                path: drive.path.clone(),
                reason: e.to_string(),
            })?;
            tracing::info!(
                drive = %drive.path.display(),
                slices = found.len(),
                removed,
                "cache drive scanned"
            );
            Some(found)
        };
        checked.push((drive, found));
    }
    Ok(checked)
}

/// Tests failed drives again now and then, so a drive that was full or
/// briefly read-only comes back without a restart.
async fn recheck_drives(cache: Weak<Cache>) {
    loop {
        tokio::time::sleep(DRIVE_RECHECK).await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        let failed: Vec<Arc<DriveShared>> = cache
            .lock()
            .drives
            .iter()
            .filter(|d| !d.shared.writable.load(Ordering::Acquire))
            .map(|d| d.shared.clone())
            .collect();
        drop(cache);
        for drive in failed {
            let root = drive.root.clone();
            if let Ok(Ok(())) = tokio::task::spawn_blocking(move || probe_writable(&root)).await {
                tracing::info!(drive = %drive.path.display(), "cache drive writable again");
                *drive.problem.lock().expect("problem lock") = None;
                drive.writable.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_probe_is_never_reused() {
        let mut state = State::default();
        let key = KeyHash::of("origin.test/a");
        let running = state.probe_cell(key);
        assert!(
            Arc::ptr_eq(&running, &state.probe_cell(key)),
            "a running probe is shared"
        );
        running
            .set(Ok(Arc::new(Version::length_only(1, 4096))))
            .unwrap();
        let next = state.probe_cell(key);
        assert!(!Arc::ptr_eq(&running, &next));
        assert!(!next.initialized());
    }
}
