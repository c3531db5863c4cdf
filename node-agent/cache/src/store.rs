//! The files on a cache drive.
//!
//! ```text
//! <drive>/lastmile-cache/objects/<3 hex>/<key hash>-<version tag>-<slice index>.slice
//! <drive>/lastmile-cache/tmp/<fills in progress>
//! ```
//!
//! A slice file is a 4 KiB header followed by the slice's bytes (so the data
//! is page-aligned for sendfile). The header names the key, the object's
//! identity (length, ETag, Last-Modified), the slice size, and a CRC32 of the
//! data. The version tag in the name is a hash of identity and slice size, so
//! slices of two versions of an object never share a file name.
//!
//! A fill writes into `tmp/` and renames the finished file into `objects/`:
//! a slice is visible only when complete, and `tmp/` is emptied at start-up.
//! Slices are not fsynced one by one; instead every slice found at start-up
//! is checked against its CRC the first time it is served, which also catches
//! what a power loss can leave behind.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::config::{ApplyError, DriveConfig};
use crate::key::KeyHash;

pub(crate) const SLICE_HEADER_BYTES: u64 = 4096;
const MAGIC: &[u8; 8] = b"LMSLICE1";
const FORMAT_VERSION: u32 = 1;
const CACHE_FOLDER: &str = "lastmile-cache";
const ABSENT: u16 = u16::MAX;
/// Longest ETag / Last-Modified / Content-Type an object may have to be stored.
pub(crate) const MAX_VALIDATOR_BYTES: usize = 1024;

/// What makes two origin answers the same object: if any of these differ the
/// bytes may differ, and slices of the two must never be mixed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    pub len: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Identity {
    /// Without a validator a changed object of the same length would go
    /// unnoticed, so such objects are not stored.
    pub(crate) fn has_validator(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// An object as cached: its identity, how it is sliced, and its type.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    pub identity: Identity,
    pub slice_size: u64,
    pub content_type: Option<String>,
    /// Names this version's slice files; computed once, used per slice.
    tag: u64,
}

impl Version {
    pub(crate) fn new(
        identity: Identity,
        slice_size: u64,
        content_type: Option<String>,
    ) -> Version {
        let tag = version_tag(&identity, slice_size);
        Version {
            identity,
            slice_size,
            content_type,
            tag,
        }
    }

    /// An object known only by its length (an empty one, say).
    pub(crate) fn length_only(len: u64, slice_size: u64) -> Version {
        let identity = Identity {
            len,
            etag: None,
            last_modified: None,
        };
        Version::new(identity, slice_size, None)
    }

    /// Same bytes in the same slices (the content type does not matter).
    pub(crate) fn same_as(&self, other: &Version) -> bool {
        self.identity == other.identity && self.slice_size == other.slice_size
    }

    pub(crate) fn len(&self) -> u64 {
        self.identity.len
    }

    /// Data bytes of slice `index`.
    pub(crate) fn slice_len(&self, index: u64) -> u64 {
        let start = index.saturating_mul(self.slice_size);
        self.len().saturating_sub(start).min(self.slice_size)
    }

    pub(crate) fn tag(&self) -> u64 {
        self.tag
    }
}

fn version_tag(identity: &Identity, slice_size: u64) -> u64 {
    let mut hash = Sha256::new();
    hash.update(identity.len.to_le_bytes());
    hash.update(slice_size.to_le_bytes());
    for part in [&identity.etag, &identity.last_modified] {
        match part {
            Some(text) => {
                hash.update([1u8]);
                hash.update((text.len() as u64).to_le_bytes());
                hash.update(text.as_bytes());
            }
            None => hash.update([0u8]),
        }
    }
    let digest = hash.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Disk space a file of `len` bytes takes, as the quota counts it.
pub(crate) fn disk_bytes(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

pub(crate) fn slice_file_bytes(data_len: u64) -> u64 {
    disk_bytes(SLICE_HEADER_BYTES + data_len)
}

/// The header of a slice file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceHeader {
    pub key: KeyHash,
    pub index: u64,
    pub identity: Identity,
    pub slice_size: u64,
    pub content_type: Option<String>,
    pub data_len: u64,
    pub data_crc: u32,
    /// Wall-clock time (ns since the epoch) the origin answered with this
    /// identity: at start-up, the newest identity of a key wins.
    pub observed_at_ns: u64,
    /// The cache key, for people reading the drive (truncated if long).
    pub key_text: String,
}

impl SliceHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SLICE_HEADER_BYTES as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; 4]); // header CRC, filled below
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.key.0);
        for n in [
            self.index,
            self.slice_size,
            self.data_len,
            self.identity.len,
            self.observed_at_ns,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.data_crc.to_le_bytes());
        for text in [
            &self.identity.etag,
            &self.identity.last_modified,
            &self.content_type,
        ] {
            put_text(&mut out, text.as_deref());
        }
        let room = SLICE_HEADER_BYTES as usize - out.len() - 2;
        let mut key_text = &self.key_text[..self.key_text.len().min(room)];
        while !self.key_text.is_char_boundary(key_text.len()) {
            key_text = &key_text[..key_text.len() - 1];
        }
        put_text(&mut out, Some(key_text));
        out.resize(SLICE_HEADER_BYTES as usize, 0);
        let crc = crc32fast::hash(&out[12..]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SliceHeader, &'static str> {
        if bytes.len() != SLICE_HEADER_BYTES as usize {
            return Err("short header");
        }
        if &bytes[..8] != MAGIC {
            return Err("not a slice file");
        }
        let stored_crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[12..]) != stored_crc {
            return Err("header checksum mismatch");
        }
        let mut r = Reader { bytes, at: 12 };
        if r.u32()? != FORMAT_VERSION {
            return Err("unknown format version");
        }
        let key = KeyHash(r.take(16)?.try_into().expect("16 bytes"));
        let index = r.u64()?;
        let slice_size = r.u64()?;
        let data_len = r.u64()?;
        let len = r.u64()?;
        let observed_at_ns = r.u64()?;
        let data_crc = r.u32()?;
        let etag = r.text()?;
        let last_modified = r.text()?;
        let content_type = r.text()?;
        let key_text = r.text()?.unwrap_or_default();
        Ok(SliceHeader {
            key,
            index,
            identity: Identity {
                len,
                etag,
                last_modified,
            },
            slice_size,
            content_type,
            data_len,
            data_crc,
            observed_at_ns,
            key_text,
        })
    }

    pub(crate) fn version(&self) -> Version {
        Version::new(
            self.identity.clone(),
            self.slice_size,
            self.content_type.clone(),
        )
    }
}

fn put_text(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => {
            out.extend_from_slice(&(text.len() as u16).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("header overflow")?;
        let slice = self.bytes.get(self.at..end).ok_or("header overflow")?;
        self.at = end;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn text(&mut self) -> Result<Option<String>, &'static str> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2"));
        if len == ABSENT {
            return Ok(None);
        }
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "text is not UTF-8")
    }
}

/// A drive in use: where its files are and whether it can take new slices.
/// The quota and the bytes used live in the cache's index; these are the
/// parts fills reach without taking the index lock.
#[derive(Debug)]
pub(crate) struct DriveShared {
    pub id: u32,
    /// The folder the operator configured.
    pub path: PathBuf,
    /// `<path>/lastmile-cache`.
    pub root: PathBuf,
    /// Bytes promised to fills in progress.
    pub reserved: AtomicU64,
    /// Bytes of files taken out of the index but not yet deleted.
    pub deleting: AtomicU64,
    pub writable: AtomicBool,
    pub problem: Mutex<Option<String>>,
    /// Set when the drive leaves the configuration; its fills then discard.
    pub retired: AtomicBool,
}

impl DriveShared {
    pub(crate) fn new(id: u32, path: PathBuf) -> DriveShared {
        DriveShared {
            id,
            root: path.join(CACHE_FOLDER),
            path,
            reserved: AtomicU64::new(0),
            deleting: AtomicU64::new(0),
            writable: AtomicBool::new(true),
            problem: Mutex::new(None),
            retired: AtomicBool::new(false),
        }
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn slice_path(&self, key: KeyHash, tag: u64, index: u64) -> PathBuf {
        let hex = key.to_hex();
        self.root
            .join("objects")
            .join(&hex[..3])
            .join(format!("{hex}-{tag:016x}-{index}.slice"))
    }
}

fn parse_slice_name(name: &str) -> Option<(KeyHash, u64, u64)> {
    let stem = name.strip_suffix(".slice")?;
    let mut parts = stem.splitn(3, '-');
    let key = KeyHash::from_hex(parts.next()?)?;
    let tag = u64::from_str_radix(parts.next()?, 16).ok()?;
    let index = parts.next()?.parse().ok()?;
    Some((key, tag, index))
}

/// Checks a drive before it is used: it exists, is a folder, its filesystem
/// can hold the quota, and the cache folder in it can be written.
pub(crate) fn check_drive(drive: &DriveConfig) -> Result<(), ApplyError> {
    let path = &drive.path;
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ApplyError::DriveMissing { path: path.clone() })
        }
        Err(e) => {
            return Err(ApplyError::DriveNotWritable {
                path: path.clone(),
                reason: e.to_string(),
            })
        }
    };
    if !metadata.is_dir() {
        return Err(ApplyError::DriveNotAFolder { path: path.clone() });
    }
    if let Ok(stats) = rustix::fs::statvfs(path) {
        let filesystem_bytes = stats.f_blocks.saturating_mul(stats.f_frsize);
        if filesystem_bytes < drive.quota_bytes {
            return Err(ApplyError::DriveTooSmall {
                path: path.clone(),
                filesystem_bytes,
                quota_bytes: drive.quota_bytes,
            });
        }
    }
    probe_writable(&path.join(CACHE_FOLDER)).map_err(|e| ApplyError::DriveNotWritable {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// Creates the cache folders and writes, syncs and removes a small file.
pub(crate) fn probe_writable(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root.join("objects"))?;
    fs::create_dir_all(root.join("tmp"))?;
    let probe = root
        .join("tmp")
        .join(format!("probe-{}", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)?;
        file.write_all_at(&[0x5a; 4096], 0)?;
        file.sync_data()
    })();
    let _ = fs::remove_file(&probe);
    result
}

/// A valid slice file found on a drive at start-up.
#[derive(Debug)]
pub(crate) struct FoundSlice {
    pub header: SliceHeader,
    pub path: PathBuf,
    pub file_bytes: u64,
}

/// Reads every slice header on a drive (blocking). Leftover fills and files
/// that are not whole, valid slices are deleted.
pub(crate) fn scan_drive(root: &Path) -> io::Result<(Vec<FoundSlice>, u64)> {
    let tmp = root.join("tmp");
    if tmp.exists() {
        for entry in fs::read_dir(&tmp)? {
            let _ = fs::remove_file(entry?.path());
        }
    }
    let mut found = Vec::new();
    let mut removed = 0;
    let objects = root.join("objects");
    if !objects.exists() {
        return Ok((found, removed));
    }
    for dir in fs::read_dir(&objects)? {
        let dir = dir?;
        if !dir.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(dir.path())? {
            let entry = entry?;
            let path = entry.path();
            match read_slice_header(&path) {
                Ok(Some(slice)) => found.push(slice),
                Ok(None) | Err(_) => {
                    let _ = fs::remove_file(&path);
                    removed += 1;
                }
            }
        }
    }
    Ok((found, removed))
}

fn read_slice_header(path: &Path) -> io::Result<Option<FoundSlice>> {
    let Some((key, tag, index)) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_slice_name)
    else {
        return Ok(None);
    };
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut bytes = vec![0u8; SLICE_HEADER_BYTES as usize];
    if len < SLICE_HEADER_BYTES {
        return Ok(None);
    }
    file.read_exact_at(&mut bytes, 0)?;
    let Ok(header) = SliceHeader::decode(&bytes) else {
        return Ok(None);
    };
    let version = header.version();
    let consistent = header.key == key
        && header.index == index
        && version.tag() == tag
        && header.slice_size > 0
        && header.data_len > 0
        && header.data_len == version.slice_len(index)
        && len == SLICE_HEADER_BYTES + header.data_len;
    if !consistent {
        return Ok(None);
    }
    Ok(Some(FoundSlice {
        header,
        path: path.to_path_buf(),
        file_bytes: disk_bytes(len),
    }))
}

/// Reads a slice's data and checks its CRC against the header (blocking).
pub(crate) fn verify_slice(file: &File, expected: &Version, index: u64) -> io::Result<bool> {
    let mut header = vec![0u8; SLICE_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, 0)?;
    let Ok(header) = SliceHeader::decode(&header) else {
        return Ok(false);
    };
    if !header.version().same_as(expected) || header.index != index {
        return Ok(false);
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = SLICE_HEADER_BYTES;
    loop {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(at - SLICE_HEADER_BYTES == header.data_len && hasher.finalize() == header.data_crc)
}

/// Removes a file (blocking); a missing one is fine.
pub(crate) fn remove_file_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not delete a cache file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SliceHeader {
        SliceHeader {
            key: KeyHash::of("origin.test/a"),
            index: 3,
            identity: Identity {
                len: 10_000,
                etag: Some("\"e1\"".into()),
                last_modified: None,
            },
            slice_size: 4096,
            content_type: Some("application/octet-stream".into()),
            data_len: 4096,
            data_crc: 77,
            observed_at_ns: 123,
            key_text: "origin.test/a".into(),
        }
    }

    #[test]
    fn header_round_trip_and_corruption() {
        let h = header();
        let mut bytes = h.encode();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(SliceHeader::decode(&bytes).unwrap(), h);
        bytes[100] ^= 1;
        assert!(SliceHeader::decode(&bytes).is_err());
    }

    #[test]
    fn long_key_text_is_truncated_on_a_char_boundary() {
        let mut h = header();
        h.key_text = "é".repeat(5000);
        let decoded = SliceHeader::decode(&h.encode()).unwrap();
        assert!(decoded.key_text.len() < 4096);
        assert!(decoded.key_text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn version_tags_differ_by_identity_and_slice_size() {
        let v = header().version();
        let mut identity = v.identity.clone();
        identity.etag = Some("\"e2\"".into());
        let other = Version::new(identity, v.slice_size, v.content_type.clone());
        assert_ne!(v.tag(), other.tag());
        let resliced = Version::new(v.identity.clone(), 8192, v.content_type.clone());
        assert_ne!(v.tag(), resliced.tag());
        let retyped = Version::new(v.identity.clone(), v.slice_size, None);
        assert_eq!(v.tag(), retyped.tag());
    }

    #[test]
    fn slice_lengths() {
        let v = header().version();
        assert_eq!(v.slice_len(0), 4096);
        assert_eq!(v.slice_len(2), 10_000 - 8192);
        assert_eq!(v.slice_len(3), 0);
    }

    #[test]
    fn names_round_trip() {
        let d = DriveShared::new(0, "/d".into());
        let key = KeyHash::of("x");
        let path = d.slice_path(key, 0xabc, 42);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_slice_name(name), Some((key, 0xabc, 42)));
        assert!(path.starts_with("/d/lastmile-cache/objects"));
        assert_eq!(parse_slice_name("junk.slice"), None);
    }
}
