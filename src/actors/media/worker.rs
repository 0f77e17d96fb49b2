//! [`MediaWorker`]: one media thread (actix `SyncArbiter`) and the messages it does: [`Fetch`]
//! (download one claimed item, and with an object store transcode and upload it), [`Transcode`]
//! (a downloaded voice file to MP3) and [`Adopt`] (check the MP3 a kill left beside an original).
//!
//! Each worker keeps its own SDK handle per corp (opened lazily, reused, replaced when the secret
//! changes or a failure asks for it) and runs everything inside `unwind::catch`: a panic becomes
//! [`DownloadError::Panicked`] for that item, never a dead thread.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{MediaCounters, MediaSettings};
use crate::media::download::{self, DownloadError, DownloadSettings, Downloaded};
use crate::media::object_store::ObjectStore;
use crate::media::tmp_file::TempFile;
use crate::media::{adopt_beside, transcode_beside, Adoption};
use crate::sdk::{FinanceSdk, NetOptions, SdkError, SdkSession};
use crate::secret::Secret;
use crate::store::{CorpId, MediaJob};

/// Download one claimed item.
#[derive(Debug, Message)]
#[rtype(result = "Result<Downloaded, DownloadError>")]
pub struct Fetch {
    /// The corp.
    pub corpid: CorpId,
    /// Its secret (a changed secret replaces the worker's handle).
    pub secret: Secret,
    /// Network options.
    pub net: NetOptions,
    /// The item.
    pub job: MediaJob,
}

/// Transcode a downloaded voice file: `Ok(relative mp3 path)` or the error text.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, String>")]
pub struct Transcode {
    /// The original, relative to the media root.
    pub path: String,
}

/// At start-up: look beside a done voice original whose transcode was cut off for the MP3 a
/// kill left behind (see [`crate::media::adopt_beside`]).
#[derive(Debug, Message)]
#[rtype(result = "Adoption")]
pub struct Adopt {
    /// The original, relative to the media root.
    pub path: String,
}

/// Added to the SDK's worst case (timeout + 10 s) before an in-process GetMediaData is abandoned.
const MEDIA_HANG_GRACE: Duration = Duration::from_secs(2);

/// A media download thread.
pub struct MediaWorker {
    sdk: Arc<dyn FinanceSdk>,
    settings: Arc<MediaSettings>,
    sessions: HashMap<CorpId, (Secret, Box<dyn SdkSession>)>,
    /// The pipeline's stop signal, looked at between two chunks.
    stop: CancellationToken,
    /// The object store, once first needed (`[media] backend = "s3"`).
    objects: Option<ObjectStore>,
    /// Where the transcode times go.
    counters: Arc<MediaCounters>,
}

impl std::fmt::Debug for MediaWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorker").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl Actor for MediaWorker {
    type Context = SyncContext<Self>;
}

impl MediaWorker {
    /// A worker; `stop` interrupts its downloads between chunks. The same type serves as a
    /// download worker and as a transcoder (which never opens an SDK handle).
    pub fn new(
        sdk: Arc<dyn FinanceSdk>,
        settings: Arc<MediaSettings>,
        stop: CancellationToken,
        counters: Arc<MediaCounters>,
    ) -> Self {
        Self { sdk, settings, sessions: HashMap::new(), stop, objects: None, counters }
    }

    /// The corp's SDK handle: the one kept, unless the secret changed; else a new one.
    fn session(&mut self, corpid: &CorpId, secret: &Secret) -> Result<&mut dyn SdkSession, SdkError> {
        if self.sessions.get(corpid).is_some_and(|(kept, _)| kept.expose() != secret.expose()) {
            // The old handle goes before a new one is made.
            self.sessions.remove(corpid);
        }
        let sdk = &self.sdk;
        let (_, session) = match self.sessions.entry(corpid.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let session = sdk.open(corpid.as_str(), secret)?;
                // An in-process SDK cannot cut off a call that never returns: give each call a
                // deadline, so that a hung GetMediaData does not hold this worker for good.
                e.insert((secret.clone(), crate::sdk::watchdog::bounded(&**sdk, session, MEDIA_HANG_GRACE)))
            }
        };
        Ok(session.as_mut())
    }

    fn fetch(&mut self, msg: &Fetch) -> Result<Downloaded, DownloadError> {
        let settings = DownloadSettings {
            root: self.settings.root.clone(),
            owner: self.settings.owner.clone(),
            chunk_retries: self.settings.chunk_retries,
        };
        let stop = self.stop.clone();
        let Some(s) = self.settings.object_store.clone() else {
            // The directory's fsync is the settler's, once for the batch the item is recorded in.
            let session = self.session(&msg.corpid, &msg.secret)?;
            return download::download_unsynced(session, &msg.corpid, &msg.job, &msg.net, &settings, &stop);
        };
        let session = self.session(&msg.corpid, &msg.secret)?;
        let downloaded = download::download(session, &msg.corpid, &msg.job, &msg.net, &settings, &stop)?;
        let objects = match self.objects.take() {
            Some(o) => o,
            None => ObjectStore::new(&s)?,
        };
        let uploaded = upload(&objects, &self.settings, downloaded);
        self.objects = Some(objects);
        uploaded
    }

    /// Transcodes `rel` to an MP3 beside it (the temp file in the instance's temp directory).
    fn transcode(settings: &MediaSettings, rel: &str) -> Result<String, String> {
        let temp = download::temp_dir(&settings.root, &settings.owner);
        crate::unwind::catch(|| transcode_beside(&settings.root, rel, &temp, &settings.mp3()))
            .unwrap_or_else(|p| Err(format!("the transcoder panicked: {p}")))
    }
}

/// Object-store backend: transcode voice locally first, upload the original (and the MP3). The
/// local copies are [`TempFile`]s: removed once uploaded, or when the upload failed (the item is
/// downloaded again at its next attempt). `path` becomes the object key.
fn upload(objects: &ObjectStore, settings: &MediaSettings, mut d: Downloaded) -> Result<Downloaded, DownloadError> {
    let root = &settings.root;
    let original = TempFile::adopt(root.join(&d.path));
    let voice = settings.transcode && d.sniffed.is_some_and(|x| x.is_transcodable_voice());
    let transcoded = voice.then(|| MediaWorker::transcode(settings, &d.path));
    let mp3 = match &transcoded {
        Some(Ok(mp3)) => Some((TempFile::adopt(root.join(mp3)), objects.key(mp3))),
        _ => None,
    };
    let key = objects.key(&d.path);
    objects.upload_file(original.path(), &key)?;
    d.transcoded = match (transcoded, mp3) {
        (Some(Ok(_)), Some((local, mp3_key))) => {
            objects.upload_file(local.path(), &mp3_key)?;
            Some(Ok(mp3_key))
        }
        (Some(Err(e)), _) => Some(Err(e)),
        _ => None,
    };
    d.path = key;
    Ok(d)
}

impl Handler<Fetch> for MediaWorker {
    type Result = Result<Downloaded, DownloadError>;

    fn handle(&mut self, msg: Fetch, _ctx: &mut Self::Context) -> Self::Result {
        let result = crate::unwind::catch(|| self.fetch(&msg))
            .unwrap_or_else(|message| Err(DownloadError::Panicked { stage: "media download", message }));
        let drop_handle = match &result {
            // GetMediaData reports a server errcode only as rc 10002 (an expired token among
            // them, which the SDK keeps using until the handle is replaced): after any transient
            // failure the next attempt starts with a new handle, at the cost of one gettoken.
            Err(DownloadError::Sdk(e)) => {
                e.needs_new_handle() || matches!(e, SdkError::Code { code, .. } if code.is_retryable())
            }
            Err(DownloadError::Panicked { .. }) => true,
            _ => false,
        };
        if drop_handle {
            self.sessions.remove(&msg.corpid);
        }
        result
    }
}

impl Handler<Transcode> for MediaWorker {
    type Result = Result<String, String>;

    fn handle(&mut self, msg: Transcode, _ctx: &mut Self::Context) -> Self::Result {
        let t = std::time::Instant::now();
        let r = MediaWorker::transcode(&self.settings, &msg.path);
        self.counters.stages.transcode.observe(t.elapsed());
        r
    }
}

impl Handler<Adopt> for MediaWorker {
    type Result = MessageResult<Adopt>;

    fn handle(&mut self, msg: Adopt, _ctx: &mut Self::Context) -> Self::Result {
        let s = &self.settings;
        let temp = download::temp_dir(&s.root, &s.owner);
        MessageResult(
            crate::unwind::catch(|| adopt_beside(&s.root, &msg.path, &temp, &s.mp3(), s.transcode))
                .unwrap_or_else(|p| Adoption::Unreadable(format!("the check panicked: {p}"))),
        )
    }
}
