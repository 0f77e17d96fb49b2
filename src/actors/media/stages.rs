//! [`MediaStages`]: how long each stage of a media item takes, as histograms (`/metrics`:
//! `wework_msgaudit_media_stage_seconds{stage=…}`), to see where the time of a media run goes.
//!
//! The worker measures the download's own steps ([`StageTimes`]); the scheduler measures the
//! claim (one per claim statement, however many items it claims), the settler the directory
//! fsyncs and the row updates (one per settled batch), the transcoder pool each transcode.

use crate::media::download::StageTimes;
use crate::observe::histogram::{Histogram, HistogramSnapshot};

/// One histogram per stage.
#[derive(Debug, Default)]
pub struct MediaStages {
    /// One claim statement (its items' rows to status 2).
    pub claim: Histogram,
    /// From the first `GetMediaData` call to its bytes.
    pub first_byte: Histogram,
    /// Every chunk of one file into its temp file.
    pub download: Histogram,
    /// Size and MD5 compared, type sniffed.
    pub verify: Histogram,
    /// `fsync` of one file.
    pub fsync: Histogram,
    /// The directory made and the rename of one file.
    pub rename: Histogram,
    /// The directory fsyncs of one settled batch.
    pub dir_fsync: Histogram,
    /// The one transaction of a settled batch.
    pub row_update: Histogram,
    /// One transcode to MP3.
    pub transcode: Histogram,
}

impl MediaStages {
    /// Counts the steps of one download.
    pub fn downloaded(&self, t: &StageTimes) {
        self.first_byte.observe(t.first_byte);
        self.download.observe(t.download);
        self.verify.observe(t.verify);
        self.fsync.observe(t.fsync);
        self.rename.observe(t.rename);
    }

    /// `(stage, histogram)` in the order of an item's life.
    pub fn snapshot(&self) -> Vec<(String, HistogramSnapshot)> {
        [
            ("claim", &self.claim),
            ("first_byte", &self.first_byte),
            ("download", &self.download),
            ("verify", &self.verify),
            ("fsync", &self.fsync),
            ("rename", &self.rename),
            ("dir_fsync", &self.dir_fsync),
            ("row_update", &self.row_update),
            ("transcode", &self.transcode),
        ]
        .into_iter()
        .map(|(name, h)| (name.to_string(), h.snapshot()))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_download_counts_in_each_of_its_stages() {
        let s = MediaStages::default();
        let ms = Duration::from_millis;
        s.downloaded(&StageTimes { first_byte: ms(2), download: ms(3), verify: ms(0), fsync: ms(4), rename: ms(1) });
        let snap = s.snapshot();
        let names: Vec<&str> = snap.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["claim", "first_byte", "download", "verify", "fsync", "rename", "dir_fsync", "row_update", "transcode"]
        );
        let count = |name: &str| snap.iter().find(|(n, _)| n == name).unwrap().1.count;
        assert_eq!((count("download"), count("fsync"), count("claim")), (1, 1, 0));
        let fsync = &snap.iter().find(|(n, _)| n == "fsync").unwrap().1;
        assert!((fsync.sum - 0.004).abs() < 1e-9, "{}", fsync.sum);
    }
}
