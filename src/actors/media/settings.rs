//! [`MediaSettings`]: what the media actors run with, made from `[media]` by
//! [`MediaSettings::from_config`]. The defaults are defined once, in [`MediaConfig::default`];
//! `MediaSettings::default()` is the default configuration's settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{MediaBackend, MediaConfig};
use crate::media::object_store::ObjectStoreSettings;
use crate::media::transcode::Mp3Options;

/// Media settings (from `[media]`).
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The media root.
    pub root: PathBuf,
    /// This instance's name in `claimed_by` (stable across restarts).
    pub owner: String,
    /// Download worker threads.
    pub workers: usize,
    /// Transcoder threads (their own pool: a download never waits for an encoder).
    pub transcode_workers: usize,
    /// Items of one corp in flight at most.
    pub per_corp: usize,
    /// Attempts per item before it fails for good.
    pub max_attempts: u32,
    /// In-place retries of one failed chunk.
    pub chunk_retries: u32,
    /// First retry delay of an item; doubles per attempt.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A claim older than this is taken back from whoever made it.
    pub claim_stale: Duration,
    /// How often every corp's table is looked at even without a nudge.
    pub sweep_interval: Duration,
    /// Transcode voice to MP3.
    pub transcode: bool,
    /// MP3 bitrate, kbit/s.
    pub mp3_bitrate_kbps: u32,
    /// MP3 sample rate; `None` keeps the source's (8000 for AMR-NB, 24000 for SILK).
    pub mp3_sample_rate: Option<u32>,
    /// LAME's algorithm quality, 0..=9.
    pub mp3_quality: u8,
    /// Upload to this object store instead of keeping files under `root` (which then only
    /// holds files in flight).
    pub object_store: Option<ObjectStoreSettings>,
}

impl MediaSettings {
    /// The settings of `[media]`, with `owner` as this instance's name in claims (`[media]
    /// instance_id`, or what the caller picks when that is empty). Counts are at least 1, the
    /// sweep at least every 100 ms.
    pub fn from_config(m: &MediaConfig, owner: String) -> Self {
        MediaSettings {
            root: m.root.clone(),
            owner,
            workers: m.workers.max(1),
            transcode_workers: match m.transcode_workers {
                0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
                n => n,
            },
            per_corp: m.per_corp.max(1),
            max_attempts: m.max_attempts.max(1),
            chunk_retries: m.chunk_retries,
            backoff_initial: m.backoff_initial,
            backoff_max: m.backoff_max,
            claim_stale: m.claim_stale,
            sweep_interval: m.sweep_interval.max(Duration::from_millis(100)),
            transcode: m.transcode,
            mp3_bitrate_kbps: m.mp3_bitrate,
            mp3_sample_rate: (m.mp3_sample_rate > 0).then_some(m.mp3_sample_rate),
            mp3_quality: m.mp3_quality,
            object_store: (m.backend == MediaBackend::S3).then(|| ObjectStoreSettings {
                endpoint: m.s3_endpoint.clone(),
                bucket: m.s3_bucket.clone(),
                region: m.s3_region.clone(),
                access_key_id: m.s3_access_key_id.clone(),
                secret_access_key: m.s3_secret_access_key.clone(),
                prefix: m.s3_prefix.clone(),
            }),
        }
    }

    /// The MP3 encoder's options.
    pub fn mp3(&self) -> Mp3Options {
        Mp3Options { bitrate_kbps: self.mp3_bitrate_kbps, sample_rate: self.mp3_sample_rate, quality: self.mp3_quality }
    }
}

impl Default for MediaSettings {
    /// The default `[media]` section's settings, owner `default`.
    fn default() -> Self {
        Self::from_config(&MediaConfig::default(), "default".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_configurations() {
        let s = MediaSettings::default();
        let m = MediaConfig::default();
        assert_eq!((s.root.as_path(), s.owner.as_str()), (m.root.as_path(), "default"));
        assert_eq!(
            (s.workers, s.per_corp, s.max_attempts, s.chunk_retries),
            (m.workers, m.per_corp, m.max_attempts, m.chunk_retries)
        );
        assert_eq!(
            (s.backoff_initial, s.backoff_max, s.claim_stale),
            (m.backoff_initial, m.backoff_max, m.claim_stale)
        );
        assert_eq!((s.transcode, s.mp3_bitrate_kbps, s.mp3_sample_rate), (m.transcode, m.mp3_bitrate, None));
        assert_eq!((m.mp3_quality, s.mp3().quality), (crate::media::transcode::DEFAULT_MP3_QUALITY, m.mp3_quality));
        assert!(s.object_store.is_none());
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(s.transcode_workers, cores, "0: one transcoder per core");
        let zero = MediaConfig { workers: 0, per_corp: 0, max_attempts: 0, sweep_interval: Duration::ZERO, ..m };
        let s = MediaSettings::from_config(&zero, "x".into());
        assert_eq!((s.workers, s.per_corp, s.max_attempts), (1, 1, 1));
        let three =
            MediaSettings::from_config(&MediaConfig { transcode_workers: 3, ..MediaConfig::default() }, "x".into());
        assert_eq!(three.transcode_workers, 3);
        assert_eq!(s.sweep_interval, Duration::from_millis(100));
    }
}
