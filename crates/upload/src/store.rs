//! The checks between a URL and a file's bytes ([`Uploads`]): a PUT's grant, its size while
//! the body streams in, the owner's quota when it is recorded, and a GET's file while it is
//! alive. Where the bytes live is [`FileStore`]'s business (a directory or an object
//! store); nothing here asks which.
//!
//! A PUT's body streams into the store's [`Sink`], invisible to GETs, and is put under its
//! id before it is recorded; nothing is recorded, and nothing of the body stays, when the
//! body is longer or shorter than the grant, the quota is passed, or the id is taken. Bytes
//! are never served before their record exists.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parley_proto::upload::{self, Grant};
use parley_storage::{Storage, UploadAdded, UploadQuota, UploadRecord};

use crate::files::{FileBody, FileStore, Sink, StoreError};
use crate::UploadSettings;

/// Files expired per statement when expiring.
const EXPIRE_BATCH: u32 = 1000;
/// What an upload cut short by a crash left in the store is swept once it is this old
/// (uploads in progress touch theirs all the time).
const SWEEP_AFTER: Duration = Duration::from_secs(3600);

/// Why a PUT is refused: the HTTP listener maps each to its status, in one place.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The URL is not a slot's: bad id, name or query.
    #[error("not an upload URL")]
    BadUrl,
    /// The signature is not the grant's (forged or altered).
    #[error("the slot's signature does not match")]
    BadSignature,
    /// The slot's time is over.
    #[error("the slot has expired")]
    Expired,
    /// The body's length is not the slot's size.
    #[error("the body is not the size the slot was given for")]
    WrongSize,
    /// The request's content type is not the slot's.
    #[error("the content type is not the one the slot was given for")]
    WrongType,
    /// A file was already uploaded with this slot.
    #[error("this slot was used already")]
    Exists,
    /// The owner's quota would be passed.
    #[error("the owner's upload quota is used up")]
    OverQuota,
    /// Too many uploads in progress (the owner's or the node's): retry later.
    #[error("too many uploads in progress; retry later")]
    Busy,
    /// Storage or the file store failed.
    #[error("the file could not be stored: {0}")]
    Internal(String),
}

impl From<StoreError> for PutError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists => PutError::Exists,
            e => PutError::Internal(e.to_string()),
        }
    }
}

/// A live file, as recorded.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub record: UploadRecord,
}

/// A PUT's body on its way to the store. Dropped before it is placed (the client went
/// away and the request with it), its sink cleans up after itself and its place in
/// progress is given back.
#[derive(Debug)]
pub struct PartialFile {
    grant: Grant,
    sink: Sink,
    written: u64,
    _place: crate::inflight::Reservation,
}

impl PartialFile {
    /// Appends a chunk of the body; a body longer than the slot is refused at once.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), PutError> {
        self.written = self.written.saturating_add(chunk.len() as u64);
        if self.written > self.grant.size {
            return Err(PutError::WrongSize);
        }
        Ok(self.sink.write(chunk).await?)
    }
}

/// The upload service's shared state: settings, the secret grants are signed with, storage
/// and the files.
#[derive(Debug)]
pub struct Uploads {
    settings: UploadSettings,
    /// Where the URLs handed out point: scheme, host and port of the HTTP listener as
    /// clients reach it, without a trailing slash (`https://chat.example.org`); set once,
    /// when known.
    base_url: std::sync::OnceLock<String>,
    secret: Vec<u8>,
    storage: Arc<dyn Storage>,
    files: FileStore,
    in_flight: Arc<crate::inflight::InFlight>,
}

impl Uploads {
    /// Opens the file store (creating its directory, or the object store's client).
    pub fn new(
        settings: UploadSettings,
        secret: Vec<u8>,
        storage: Arc<dyn Storage>,
    ) -> Result<Arc<Uploads>, StoreError> {
        let files = FileStore::open(&settings.store)?;
        let in_flight = crate::inflight::InFlight::new(
            settings.max_uploads_per_user,
            settings.max_in_flight_bytes,
        );
        Ok(Arc::new(Uploads {
            in_flight,
            settings,
            base_url: std::sync::OnceLock::new(),
            secret,
            storage,
            files,
        }))
    }

    /// Whether the file store can be used (the object store answers with this key).
    pub async fn check_store(&self) -> Result<(), StoreError> {
        self.files.check().await
    }

    /// Sets where the URLs point (once: later calls are ignored).
    pub fn set_base_url(&self, url: String) {
        let _ = self.base_url.set(url);
    }

    pub fn settings(&self) -> &UploadSettings {
        &self.settings
    }

    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub(crate) fn quota(&self) -> UploadQuota {
        UploadQuota {
            bytes: self.settings.quota_bytes,
            files: self.settings.quota_files,
        }
    }

    /// The PUT and GET URLs of `grant`.
    pub fn urls(&self, grant: &Grant) -> (String, String) {
        let get = format!(
            "{}/upload/{}/{}",
            self.base_url.get().map_or("", String::as_str),
            grant.id,
            upload::path_segment(&grant.filename)
        );
        let put = format!(
            "{get}?size={}&type={}&owner={}&expires={}&sig={}",
            grant.size,
            upload::path_segment(&grant.content_type),
            upload::path_segment(&grant.owner),
            grant.expires_ms,
            grant.sign(&self.secret)
        );
        (put, get)
    }

    /// Checks a PUT to `/upload/{id}/{name}?{query}` with the request's declared length and
    /// type, at `now_ms`: the grant it carries, if the URL is a live, untouched slot's.
    pub fn check_put(
        &self,
        id: &str,
        name: &str,
        query: &str,
        content_length: Option<u64>,
        content_type: Option<&str>,
        now_ms: i64,
    ) -> Result<Grant, PutError> {
        let (grant, signature) = upload::parse_put(id, name, query).ok_or(PutError::BadUrl)?;
        if !grant.verify(&self.secret, &signature) {
            return Err(PutError::BadSignature);
        }
        if now_ms >= grant.expires_ms {
            return Err(PutError::Expired);
        }
        // XEP-0363 §7: the PUT's length is the requested size (a body declared otherwise
        // is refused before a byte is written; one that streams otherwise, while written).
        if content_length.is_some_and(|n| n != grant.size) {
            return Err(PutError::WrongSize);
        }
        if let Some(t) = content_type.and_then(upload::media_type) {
            if t != grant.content_type {
                return Err(PutError::WrongType);
            }
        }
        Ok(grant)
    }

    /// Opens the store's sink for `grant`'s body, at `now_ms`, if the owner's recorded
    /// files, its uploads in progress and this one fit its quota, and the owner and node
    /// have room for one more upload in progress.
    pub async fn begin(&self, grant: Grant, now_ms: i64) -> Result<PartialFile, PutError> {
        if self.files.exists(&grant.id).await? {
            return Err(PutError::Exists);
        }
        let (place, (others, other_bytes)) = self
            .in_flight
            .reserve(&grant.owner, grant.size)
            .map_err(|_| PutError::Busy)?;
        let (username, host) = grant.owner.split_once('@').ok_or(PutError::BadUrl)?;
        let (bytes, files) = self
            .storage
            .upload_usage(username, host, now_ms)
            .await
            .map_err(|e| PutError::Internal(e.to_string()))?;
        let quota = self.quota();
        if bytes.saturating_add(other_bytes).saturating_add(grant.size) > quota.bytes
            || files.saturating_add(others as u64) >= quota.files
        {
            return Err(PutError::OverQuota);
        }
        let sink = self.files.create(&grant.id).await?;
        Ok(PartialFile {
            grant,
            sink,
            written: 0,
            _place: place,
        })
    }

    /// Ends a PUT whose body is all in: checks its length, puts its bytes in place and
    /// records the file against its owner's quota; on any refusal nothing stays.
    pub async fn finish(&self, mut partial: PartialFile, now_ms: i64) -> Result<(), PutError> {
        let result = self.place(&mut partial, now_ms).await;
        if result.is_err() {
            partial.sink.discard().await;
        }
        result
    }

    /// Drops a PUT that failed while its body came in.
    pub async fn abandon(&self, mut partial: PartialFile) {
        partial.sink.discard().await;
    }

    async fn place(&self, partial: &mut PartialFile, now_ms: i64) -> Result<(), PutError> {
        if partial.written != partial.grant.size {
            return Err(PutError::WrongSize);
        }
        let grant = &partial.grant;
        let (username, host) = grant.owner.split_once('@').ok_or(PutError::BadUrl)?;
        let record = UploadRecord {
            id: grant.id.clone(),
            username: username.to_owned(),
            host: host.to_owned(),
            filename: grant.filename.clone(),
            content_type: grant.content_type.clone(),
            size: grant.size,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(
                i64::try_from(self.settings.expire_after.as_millis()).unwrap_or(i64::MAX),
            ),
        };
        // In place first, recorded second: a record never points at missing bytes. Bytes
        // without a record (a crash between the two) are never served. Placed only where
        // no file is: a second PUT of the same slot racing this one is told it exists
        // instead of replacing the bytes.
        partial.sink.commit().await?;
        let refused = match self.storage.upload_add(&record, self.quota()).await {
            Ok(UploadAdded::Added) => return Ok(()),
            Ok(UploadAdded::OverQuota) => PutError::OverQuota,
            Ok(UploadAdded::Exists) => PutError::Exists,
            Err(e) => PutError::Internal(e.to_string()),
        };
        // The bytes in place are this PUT's own (the commit above put them there).
        self.files.remove(&grant.id).await;
        Err(refused)
    }

    /// The live file `id` named `name` (as in its URL), at `now_ms`.
    pub async fn file(
        &self,
        id: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<StoredFile>, parley_storage::StorageError> {
        if !upload::valid_file_id(id) {
            return Ok(None);
        }
        let Some(filename) = upload::decode_segment(name) else {
            return Ok(None);
        };
        let Some(record) = self.storage.upload_get(id).await? else {
            return Ok(None);
        };
        Ok((record.filename == filename && record.expires_ms > now_ms)
            .then_some(StoredFile { record }))
    }

    /// `file`'s bytes, all of them or `range` (within its size); None when the store has
    /// none (expired on another node meanwhile).
    pub async fn read(
        &self,
        file: &StoredFile,
        range: Option<Range<u64>>,
    ) -> Result<Option<FileBody>, StoreError> {
        self.files.read(&file.record.id, range).await
    }

    /// Deletes the files expired at `now_ms`, records first, and what uploads cut short by
    /// a crash left in the store; how many files went.
    pub async fn expire(&self, now_ms: i64) -> Result<usize, parley_storage::StorageError> {
        let mut total = 0;
        loop {
            let ids = self.storage.upload_expire(now_ms, EXPIRE_BATCH).await?;
            for id in &ids {
                self.files.remove(id).await;
            }
            total += ids.len();
            if ids.len() < EXPIRE_BATCH as usize {
                break;
            }
        }
        let now =
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms).unwrap_or(0));
        let before = now
            .checked_sub(SWEEP_AFTER)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match self.files.sweep(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(leftovers = n, "swept what interrupted uploads left"),
            Err(e) => tracing::warn!(error = %e, "could not sweep interrupted uploads"),
        }
        Ok(total)
    }

    /// Expires files every `every` on the current runtime (every node does; deleting what
    /// another node deleted first is harmless).
    pub fn start_expiry(self: &Arc<Self>, every: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match this.expire(parley_proto::clock::now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, "expired uploaded files"),
                    Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
                }
            }
        });
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
