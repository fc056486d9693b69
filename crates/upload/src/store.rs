//! The files: where their bytes live ([`FileStore`], one directory, shared by the nodes
//! of a cluster through a shared volume), and the checks between a URL and those bytes
//! ([`Uploads`]): a PUT's grant, its size while the body streams in, the owner's quota when
//! it is recorded, and a GET's file while it is alive.
//!
//! A PUT writes to a partial file named for its id and a random suffix, then links it into
//! place and records it; nothing is recorded, and the partial file goes, when the body is
//! longer or shorter than the grant, the quota is passed, or the id is taken. Bytes are never
//! served before their record exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parley_proto::upload::{self, Grant};
use parley_storage::{Storage, UploadAdded, UploadQuota, UploadRecord};
use tokio::io::AsyncWriteExt;

use crate::UploadSettings;

/// Files expired per statement when expiring.
const EXPIRE_BATCH: u32 = 1000;

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
    /// Storage or the file system failed.
    #[error("the file could not be stored: {0}")]
    Internal(String),
}

/// A file to serve.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub path: PathBuf,
    pub record: UploadRecord,
}

/// One directory of files named by id.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store in `dir`, created if absent.
    pub fn open(dir: &Path) -> std::io::Result<FileStore> {
        std::fs::create_dir_all(dir)?;
        Ok(FileStore {
            dir: dir.to_owned(),
        })
    }

    /// Where file `id` lives; None for an id that is not one ([`upload::valid_file_id`]),
    /// so no request names a path outside the store.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        upload::valid_file_id(id).then(|| self.dir.join(id))
    }

    fn partial_path(&self, id: &str) -> PathBuf {
        self.dir
            .join(format!(".partial-{id}-{}", upload::new_file_id()))
    }

    /// Deletes file `id`'s bytes (absent already is fine: another node's expiry ran).
    pub async fn remove(&self, id: &str) {
        if let Some(path) = self.path(id) {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, file = id, "could not delete an expired upload")
                }
            }
        }
    }
}

/// A PUT's body on its way to the store. Dropped before it is placed (the client went
/// away and the request with it), its partial file goes and its place in progress is given
/// back.
#[derive(Debug)]
pub struct PartialFile {
    grant: Grant,
    path: PathBuf,
    file: Option<tokio::fs::File>,
    written: u64,
    placed: bool,
    _place: crate::inflight::Reservation,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.placed {
            self.file = None;
            // Sync on purpose: a drop cannot wait, and removing one file is short.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl PartialFile {
    /// Appends a chunk of the body; a body longer than the slot is refused at once.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), PutError> {
        self.written = self.written.saturating_add(chunk.len() as u64);
        if self.written > self.grant.size {
            return Err(PutError::WrongSize);
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| PutError::Internal("file already closed".into()))?;
        file.write_all(chunk)
            .await
            .map_err(|e| PutError::Internal(e.to_string()))
    }

    async fn discard(&mut self) {
        self.file = None;
        let _ = tokio::fs::remove_file(&self.path).await;
        self.placed = true;
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
    /// Opens the file store (creating its directory).
    pub fn new(
        settings: UploadSettings,
        secret: Vec<u8>,
        storage: Arc<dyn Storage>,
    ) -> std::io::Result<Arc<Uploads>> {
        let files = FileStore::open(&settings.dir)?;
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

    /// Opens the partial file for `grant`'s body, at `now_ms`, if the owner's recorded files,
    /// its uploads in progress and this one fit its quota, and the owner and node have room
    /// for one more upload in progress.
    pub async fn begin(&self, grant: Grant, now_ms: i64) -> Result<PartialFile, PutError> {
        if self.files.path(&grant.id).is_some_and(|p| p.exists()) {
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
        let path = self.files.partial_path(&grant.id);
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| PutError::Internal(e.to_string()))?;
        Ok(PartialFile {
            grant,
            path,
            file: Some(file),
            written: 0,
            placed: false,
            _place: place,
        })
    }

    /// Ends a PUT whose body is all in: checks its length, records the file against its
    /// owner's quota and puts its bytes in place; on any refusal nothing stays.
    pub async fn finish(&self, mut partial: PartialFile, now_ms: i64) -> Result<(), PutError> {
        let result = self.place(&mut partial, now_ms).await;
        if result.is_err() {
            partial.discard().await;
        }
        result
    }

    /// Drops a PUT that failed while its body came in.
    pub async fn abandon(&self, mut partial: PartialFile) {
        partial.discard().await;
    }

    async fn place(&self, partial: &mut PartialFile, now_ms: i64) -> Result<(), PutError> {
        if partial.written != partial.grant.size {
            return Err(PutError::WrongSize);
        }
        let internal = |e: std::io::Error| PutError::Internal(e.to_string());
        let mut file = partial.file.take().ok_or(PutError::WrongSize)?;
        file.flush().await.map_err(internal)?;
        file.sync_all().await.map_err(internal)?;
        drop(file);
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
        let target = self.files.path(&grant.id).ok_or(PutError::BadUrl)?;
        // In place first, recorded second: a record never points at missing bytes. Bytes
        // without a record (a crash between the two) are never served. Linked, not
        // renamed: a second PUT of the same slot racing this one finds the name taken
        // instead of replacing the bytes.
        match tokio::fs::hard_link(&partial.path, &target).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(PutError::Exists)
            }
            Err(e) => return Err(internal(e)),
        }
        let _ = tokio::fs::remove_file(&partial.path).await;
        partial.placed = true;
        let refused = match self.storage.upload_add(&record, self.quota()).await {
            Ok(UploadAdded::Added) => return Ok(()),
            Ok(UploadAdded::OverQuota) => PutError::OverQuota,
            Ok(UploadAdded::Exists) => PutError::Exists,
            Err(e) => PutError::Internal(e.to_string()),
        };
        // The bytes in place are this PUT's own (the link above made them).
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
        let Some(path) = self.files.path(id) else {
            return Ok(None);
        };
        let Some(filename) = upload::decode_segment(name) else {
            return Ok(None);
        };
        let Some(record) = self.storage.upload_get(id).await? else {
            return Ok(None);
        };
        Ok((record.filename == filename && record.expires_ms > now_ms)
            .then_some(StoredFile { path, record }))
    }

    /// Deletes the files expired at `now_ms`, records first; how many went.
    pub async fn expire(&self, now_ms: i64) -> Result<usize, parley_storage::StorageError> {
        let mut total = 0;
        loop {
            let ids = self.storage.upload_expire(now_ms, EXPIRE_BATCH).await?;
            for id in &ids {
                self.files.remove(id).await;
            }
            total += ids.len();
            if ids.len() < EXPIRE_BATCH as usize {
                return Ok(total);
            }
        }
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
mod tests {
    use super::*;

    async fn uploads(dir: &Path) -> Arc<Uploads> {
        let storage = parley_storage::open("sqlite::memory:").await.unwrap();
        let settings = UploadSettings {
            max_file_bytes: 100,
            quota_bytes: 150,
            quota_files: 10,
            max_uploads_per_user: 4,
            max_in_flight_bytes: 1000,
            max_slot_lookups: 4,
            expire_after: Duration::from_secs(60),
            slot_ttl: Duration::from_secs(60),
            allowed_types: vec![],
            dir: dir.join("files"),
        };
        let u = Uploads::new(settings, b"secret".to_vec(), storage).unwrap();
        u.set_base_url("http://h".into());
        u
    }

    fn grant(size: u64, expires_ms: i64) -> Grant {
        Grant {
            id: upload::new_file_id(),
            filename: "a b.txt".into(),
            size,
            content_type: "text/plain".into(),
            owner: "alice@localhost".into(),
            expires_ms,
        }
    }

    /// The PUT URL `urls` builds, split as the listener sees it.
    fn put_parts(u: &Uploads, g: &Grant) -> (String, String, String) {
        let (put, _) = u.urls(g);
        let path = put.strip_prefix("http://h/upload/").unwrap();
        let (path, query) = path.split_once('?').unwrap();
        let (id, name) = path.split_once('/').unwrap();
        (id.to_owned(), name.to_owned(), query.to_owned())
    }

    #[tokio::test]
    async fn a_slot_is_refused_once_its_time_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let u = uploads(dir.path()).await;
        let g = grant(3, 1_000);
        let (id, name, query) = put_parts(&u, &g);
        assert_eq!(
            u.check_put(&id, &name, &query, Some(3), None, 999).unwrap(),
            g
        );
        assert!(matches!(
            u.check_put(&id, &name, &query, Some(3), None, 1_000),
            Err(PutError::Expired)
        ));
    }

    #[tokio::test]
    async fn malformed_put_urls_are_not_slots() {
        let dir = tempfile::tempdir().unwrap();
        let u = uploads(dir.path()).await;
        let g = grant(3, i64::MAX);
        let (id, name, query) = put_parts(&u, &g);
        for (id, name, query) in [
            ("../x", name.as_str(), query.as_str()),
            (id.as_str(), "..", query.as_str()),
            (id.as_str(), "%zz", query.as_str()),
            (id.as_str(), name.as_str(), "size=3"),
            (id.as_str(), name.as_str(), &format!("{query}&size=3")),
            (id.as_str(), name.as_str(), "garbage"),
        ] {
            assert!(
                matches!(
                    u.check_put(id, name, query, None, None, 0),
                    Err(PutError::BadUrl)
                ),
                "{id} {name} {query}"
            );
        }
    }

    /// A body shorter or longer than the slot leaves nothing behind, neither bytes nor a
    /// record; a whole one is stored, counted, and expires with its bytes.
    #[tokio::test]
    async fn only_whole_bodies_are_kept_and_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let u = uploads(dir.path()).await;
        let files = |d: &Path| std::fs::read_dir(d.join("files")).unwrap().count();

        let short = grant(5, i64::MAX);
        let mut p = u.begin(short.clone(), 0).await.unwrap();
        p.write(b"abc").await.unwrap();
        assert!(matches!(u.finish(p, 0).await, Err(PutError::WrongSize)));
        assert_eq!(files(dir.path()), 0);

        let long = grant(2, i64::MAX);
        let mut p = u.begin(long, 0).await.unwrap();
        assert!(matches!(p.write(b"abc").await, Err(PutError::WrongSize)));
        u.abandon(p).await;
        assert_eq!(files(dir.path()), 0);

        let whole = grant(3, i64::MAX);
        let mut p = u.begin(whole.clone(), 0).await.unwrap();
        p.write(b"abc").await.unwrap();
        u.finish(p, 1_000).await.unwrap();
        let name = upload::path_segment(&whole.filename);
        let file = u.file(&whole.id, &name, 1_000).await.unwrap().unwrap();
        assert_eq!(std::fs::read(&file.path).unwrap(), b"abc");
        assert!(u
            .file(&whole.id, "other.txt", 1_000)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            u.storage()
                .upload_usage("alice", "localhost", 1_000)
                .await
                .unwrap(),
            (3, 1)
        );

        // 60 s later it is gone, bytes and all.
        assert!(u.file(&whole.id, &name, 61_000).await.unwrap().is_none());
        assert_eq!(u.expire(61_000).await.unwrap(), 1);
        assert_eq!(files(dir.path()), 0);
    }

    /// Two PUTs of one slot at once: one is stored, the other refused, and the bytes are
    /// the stored one's.
    #[tokio::test]
    async fn a_slot_used_twice_at_once_keeps_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let u = uploads(dir.path()).await;
        let g = grant(3, i64::MAX);
        let mut first = u.begin(g.clone(), 0).await.unwrap();
        let mut second = u.begin(g.clone(), 0).await.unwrap();
        first.write(b"one").await.unwrap();
        second.write(b"two").await.unwrap();
        u.finish(first, 0).await.unwrap();
        assert!(matches!(u.finish(second, 0).await, Err(PutError::Exists)));
        let name = upload::path_segment(&g.filename);
        let file = u.file(&g.id, &name, 0).await.unwrap().unwrap();
        assert_eq!(std::fs::read(&file.path).unwrap(), b"one");
        assert_eq!(
            std::fs::read_dir(dir.path().join("files")).unwrap().count(),
            1
        );
    }

    /// The quota counts recorded files and uploads in progress: a second upload that
    /// would pass it is refused before a byte is written, even while the first is still
    /// coming in; uploads in progress are bounded per owner; a dropped upload (the client
    /// went away) leaves no partial file and gives its place back.
    #[tokio::test]
    async fn uploads_in_progress_count_against_the_quota_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let u = uploads(dir.path()).await;
        let files = |d: &Path| std::fs::read_dir(d.join("files")).unwrap().count();
        let first = u.begin(grant(100, i64::MAX), 0).await.unwrap();
        assert!(matches!(
            u.begin(grant(60, i64::MAX), 0).await,
            Err(PutError::OverQuota)
        ));
        let mut first = first;
        first.write(&[b'x'; 100]).await.unwrap();
        u.finish(first, 0).await.unwrap();
        assert!(matches!(
            u.begin(grant(60, i64::MAX), 0).await,
            Err(PutError::OverQuota)
        ));
        let mut fits = u.begin(grant(50, i64::MAX), 0).await.unwrap();
        fits.write(&[b'y'; 50]).await.unwrap();
        u.finish(fits, 0).await.unwrap();
        assert_eq!(files(dir.path()), 2);

        // Four at once for one owner (`max_uploads_per_user`), then busy.
        let other = |size| Grant {
            owner: "bob@localhost".into(),
            ..grant(size, i64::MAX)
        };
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(u.begin(other(1), 0).await.unwrap());
        }
        assert!(matches!(u.begin(other(1), 0).await, Err(PutError::Busy)));
        assert_eq!(files(dir.path()), 2 + 4, "four partial files");
        drop(open);
        assert_eq!(files(dir.path()), 2, "dropped uploads leave nothing");
        assert_eq!(u.in_flight.bytes(), 0);
        assert!(u.begin(other(1), 0).await.is_ok());
    }
}
