//! When the installation itself must shed load. A project over its quota
//! never makes ingest refuse anything (its events are counted, only their
//! payloads are not stored); ingest refuses only when the server cannot
//! take more: the writer's queue or the memory budget is full, the disk is
//! full, or the data directory's free space is below `--min-free-disk`.
//!
//! This module remembers each such episode (its reason and since when) for
//! the dashboard's banner and `/healthz`, and reads the free space, at most
//! once a second, with `statvfs` on the data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// An episode of refusals is over once this long passes without one (the
/// queue and memory budget drain within a second or two).
const QUIET_MS: i64 = 10_000;

/// Free space is read at most this often; ingest asks on every request.
const DISK_READ_INTERVAL: Duration = Duration::from_secs(1);

/// The refusal reasons (`Rejection::reason`) that mean the server is
/// shedding load, with what the dashboard says about each.
const SHEDDING_REASONS: &[(&str, &str)] = &[
    ("queue_full", "the writer's queue is full (more events arrive than the database commits)"),
    ("over_memory_budget", "requests in flight fill the memory budget (--max-inflight-bytes)"),
    ("disk_full", "the disk is full"),
    ("low_disk", "free disk space is below --min-free-disk"),
];

/// The current episode, as the dashboard and `/healthz` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shedding {
    /// `Rejection::reason` of the refusals.
    pub reason: &'static str,
    /// A sentence for a person.
    pub detail: &'static str,
    /// When it began (milliseconds since the epoch).
    pub since: i64,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    since: i64,
    last: i64,
}

/// Where free space is watched and how much must stay free.
struct DiskWatch {
    dir: PathBuf,
    min_free: u64,
}

#[derive(Default)]
struct DiskReading {
    at: Option<Instant>,
    /// `Some(free bytes)` while below the minimum.
    low: Option<u64>,
}

#[derive(Default)]
pub struct LoadShedding {
    disk: OnceLock<DiskWatch>,
    reading: Mutex<DiskReading>,
    episodes: Mutex<BTreeMap<&'static str, Episode>>,
}

impl LoadShedding {
    /// Refuses events while `dir`'s filesystem has less than `min_free`
    /// bytes free (0: never). Set once by `serve`.
    pub fn watch_free_disk(&self, dir: &Path, min_free: u64) {
        let _ = self.disk.set(DiskWatch { dir: dir.to_path_buf(), min_free });
    }

    /// `Some((free, minimum))` while free space is below the minimum; read
    /// from the filesystem at most once a second. A failed read refuses
    /// nothing (the disk-full path still catches a full disk).
    pub fn low_disk(&self) -> Option<(u64, u64)> {
        let watch = self.disk.get().filter(|w| w.min_free > 0)?;
        let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if reading.at.is_none_or(|at| at.elapsed() >= DISK_READ_INTERVAL) {
            reading.at = Some(Instant::now());
            reading.low = match free_bytes(&watch.dir) {
                Ok(free) if free < watch.min_free => Some(free),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!("could not read the free space of {}: {e}", watch.dir.display());
                    None
                }
            };
        }
        reading.low.map(|free| (free, watch.min_free))
    }

    /// Notes a refusal (any reason; only shedding ones are remembered).
    pub fn refused(&self, reason: &str, now: i64) {
        let Some(&(reason, _)) = SHEDDING_REASONS.iter().find(|(r, _)| *r == reason) else { return };
        let mut episodes = self.episodes.lock().unwrap_or_else(|p| p.into_inner());
        let episode = episodes.entry(reason).or_insert(Episode { since: now, last: now });
        if now - episode.last > QUIET_MS {
            episode.since = now;
        }
        episode.last = now;
    }

    /// The episode going on at `now`, if any: the one that began first.
    /// Low disk counts as going on while the space is low, even between
    /// requests.
    pub fn current(&self, now: i64) -> Option<Shedding> {
        if self.low_disk().is_some() {
            self.refused("low_disk", now);
        }
        let mut episodes = self.episodes.lock().unwrap_or_else(|p| p.into_inner());
        episodes.retain(|_, e| now - e.last <= QUIET_MS);
        let (reason, episode) = episodes.iter().min_by_key(|(_, e)| e.since)?;
        let detail = SHEDDING_REASONS.iter().find(|(r, _)| r == reason).map_or("", |(_, d)| d);
        Some(Shedding { reason, detail, since: episode.since })
    }
}

/// Bytes available to unprivileged writers on `dir`'s filesystem.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stat` is written
    // by statvfs before it is read (only when it returns 0).
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_start_end_and_the_first_one_shows() {
        let shedding = LoadShedding::default();
        assert_eq!(shedding.current(0), None);
        shedding.refused("unknown_token", 1_000);
        assert_eq!(shedding.current(1_000), None, "a client's own mistake is no shedding");
        shedding.refused("queue_full", 1_000);
        shedding.refused("queue_full", 5_000);
        shedding.refused("over_memory_budget", 6_000);
        let now = shedding.current(7_000).unwrap();
        assert_eq!((now.reason, now.since), ("queue_full", 1_000));
        assert!(now.detail.contains("queue"));
        // Quiet for longer than QUIET_MS: over; a new refusal starts anew.
        assert_eq!(shedding.current(5_000 + QUIET_MS + 1).unwrap().reason, "over_memory_budget");
        assert_eq!(shedding.current(6_000 + QUIET_MS + 1), None);
        shedding.refused("queue_full", 40_000);
        assert_eq!(shedding.current(40_000).unwrap().since, 40_000);
    }

    #[test]
    fn free_space_below_the_minimum_is_low_disk() {
        let dir = std::env::temp_dir();
        let free = free_bytes(&dir).unwrap();
        assert!(free > 0);
        let off = LoadShedding::default();
        assert_eq!(off.low_disk(), None, "no watch: never low");
        let zero = LoadShedding::default();
        zero.watch_free_disk(&dir, 0);
        assert_eq!(zero.low_disk(), None, "a minimum of 0 turns the check off");
        let plenty = LoadShedding::default();
        plenty.watch_free_disk(&dir, 1);
        assert_eq!(plenty.low_disk(), None);
        let low = LoadShedding::default();
        low.watch_free_disk(&dir, u64::MAX);
        let (seen, min) = low.low_disk().unwrap();
        assert_eq!(min, u64::MAX);
        assert!(seen > 0);
        assert_eq!(low.current(1).unwrap().reason, "low_disk");
        assert!(free_bytes(Path::new("/no/such/directory")).is_err());
    }
}
