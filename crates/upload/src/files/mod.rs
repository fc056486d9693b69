//! Where uploaded files' bytes live, behind one type ([`FileStore`]) so that the checks
//! ([`crate::Uploads`]), the HTTP listener and the expiry never ask which store it is: a
//! directory ([`dir`], shared by a cluster's nodes through a shared volume) or a bucket of
//! an S3-compatible object store ([`s3`], shared by nature).
//!
//! Both keep the same promises. A body streams into something no GET can see (a partial
//! file, a multipart upload or bytes held back) and is put under its id only once it is
//! whole, never over a file already there ([`Sink::commit`]: two PUTs of one slot store
//! one file); a body that is refused, or whose request goes away, leaves nothing (a dropped
//! [`Sink`] cleans up after itself). Ids are checked here ([`upload::valid_file_id`]), so no
//! request names anything outside the store.

pub(crate) mod dir;
pub(crate) mod s3;

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use parley_proto::upload;

use crate::StoreSettings;

/// A stored file's bytes (or a range of them) as they are read.
pub type FileBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file is stored under this id already.
    #[error("a file is stored under this id already")]
    Exists,
    /// The store is misconfigured (found when it is opened).
    #[error("{0}")]
    Config(String),
    /// The disk or the object store failed.
    #[error("{0}")]
    Io(String),
}

/// The files' bytes, named by id.
#[derive(Debug, Clone)]
pub enum FileStore {
    Dir(dir::DirStore),
    S3(s3::S3Store),
}

impl FileStore {
    /// Opens the store `settings` name: creates the directory, or builds the object store's
    /// client (no request is sent yet).
    pub fn open(settings: &StoreSettings) -> Result<FileStore, StoreError> {
        Ok(match settings {
            StoreSettings::Dir(path) => FileStore::Dir(dir::DirStore::open(path)?),
            StoreSettings::S3(s3) => FileStore::S3(s3::S3Store::open(s3)?),
        })
    }

    /// Whether the store can be used: the object store answers a listing of the bucket
    /// with this key (a missing bucket or a refused key says so); a directory is there.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            FileStore::Dir(_) => Ok(()),
            FileStore::S3(s) => s.check().await,
        }
    }

    /// Whether file `id` has bytes in the store.
    pub(crate) async fn exists(&self, id: &str) -> Result<bool, StoreError> {
        if !upload::valid_file_id(id) {
            return Ok(false);
        }
        match self {
            FileStore::Dir(d) => Ok(d.exists(id)),
            FileStore::S3(s) => s.exists(id).await,
        }
    }

    /// Starts receiving file `id`'s body.
    pub(crate) async fn create(&self, id: &str) -> Result<Sink, StoreError> {
        if !upload::valid_file_id(id) {
            return Err(StoreError::Io(format!("not a file id: {id:?}")));
        }
        Ok(match self {
            FileStore::Dir(d) => Sink::Dir(d.create(id).await?),
            FileStore::S3(s) => Sink::S3(s.create(id)),
        })
    }

    /// File `id`'s bytes, all of them or `range` (within the file); None when it has none.
    pub async fn read(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<FileBody>, StoreError> {
        if !upload::valid_file_id(id) {
            return Ok(None);
        }
        match self {
            FileStore::Dir(d) => d.read(id, range).await,
            FileStore::S3(s) => s.read(id, range).await,
        }
    }

    /// Deletes file `id`'s bytes (absent already is fine: another node's expiry ran).
    pub(crate) async fn remove(&self, id: &str) {
        if !upload::valid_file_id(id) {
            return;
        }
        let result = match self {
            FileStore::Dir(d) => d.remove(id).await,
            FileStore::S3(s) => s.remove(id).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, file = id, "could not delete an uploaded file");
        }
    }

    /// Deletes what uploads cut short by a crash left, if it was last touched before
    /// `before` (uploads in progress are younger); how many went.
    pub(crate) async fn sweep(&self, before: SystemTime) -> Result<usize, StoreError> {
        match self {
            FileStore::Dir(d) => d.sweep(before).await,
            FileStore::S3(s) => s.sweep(before).await,
        }
    }
}

/// A body on its way into the store, seen by nobody until [`Sink::commit`].
#[derive(Debug)]
pub(crate) enum Sink {
    Dir(dir::DirSink),
    S3(s3::S3Sink),
}

impl Sink {
    /// Takes the next chunk of the body.
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        match self {
            Sink::Dir(d) => d.write(chunk).await,
            Sink::S3(s) => s.write(chunk).await,
        }
    }

    /// Puts the whole body under its id, unless a file is there already
    /// ([`StoreError::Exists`]); on any error nothing of this body stays.
    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        match self {
            Sink::Dir(d) => d.commit().await,
            Sink::S3(s) => s.commit().await,
        }
    }

    /// Drops what was received (the body was refused).
    pub(crate) async fn discard(&mut self) {
        match self {
            Sink::Dir(d) => d.discard().await,
            Sink::S3(s) => s.discard().await,
        }
    }
}

/// `e` as a store error.
fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}
