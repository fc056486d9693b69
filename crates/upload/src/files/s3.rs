//! The object store: one object per id in a bucket of an S3-compatible store
//! (`[upload.s3]`), through `object_store`'s S3 client. Every node reaches the same
//! bucket, so a cluster needs no shared volume.
//!
//! A body is held back in memory up to one part ([`PART_BYTES`]); a body that fits is
//! written with one conditional PUT (`If-None-Match: *`), so the first of two PUTs of one
//! slot wins and the second is told the file exists. A longer one streams, part by part,
//! into a multipart upload under a staging key of its own (`partial/ID-RANDOM`, invisible
//! to GETs) that is copied to the id's key on the same condition once it is whole, then
//! deleted. A refused body's multipart upload is aborted (also when its request goes away),
//! so no part stays; a staging object a crash left behind is swept by the expiry.
//!
//! The store must honour conditional writes (`If-None-Match: *` on PUT and on completing a
//! multipart upload), as Amazon S3 does.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, GetOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, RetryConfig,
};
use parley_proto::upload;

use super::{io, FileBody, StoreError};
use crate::S3Settings;

/// Bytes held back before a body goes to a multipart upload, and the size of each part but
/// the last: S3's smallest part. Each upload in progress holds at most this much (plus one
/// chunk of the request), and never more than its own size, so `[upload]
/// max_in_flight_bytes` bounds the memory of a node's uploads too.
pub(crate) const PART_BYTES: usize = 5 * 1024 * 1024;
/// The longest request but a GET's body may take (a part is at most [`PART_BYTES`]).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a GET's body may wait for the store's next bytes (while they are wanted).
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Staging keys live under this, beside the files (ids are 24 characters: never this).
const STAGING: &str = "partial";

/// A bucket (and a key prefix in it) of an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// For everything but reading files: each request bounded by [`REQUEST_TIMEOUT`].
    store: Arc<AmazonS3>,
    /// For reading files (bounded by [`READ_IDLE_TIMEOUT`] between chunks).
    reader: Arc<AmazonS3>,
    prefix: Key,
}

impl S3Store {
    pub(crate) fn open(s: &S3Settings) -> Result<S3Store, StoreError> {
        let build = |options: ClientOptions| {
            // A client waits for its PUT or GET while the store is retried: 30 s at most.
            let retry = RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            };
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(&s.bucket)
                .with_region(&s.region)
                .with_access_key_id(&s.access_key_id)
                .with_secret_access_key(&s.secret_access_key)
                .with_client_options(options.with_allow_http(s.allow_http))
                .with_retry(retry)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
            if let Some(endpoint) = &s.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            builder
                .build()
                .map(Arc::new)
                .map_err(|e| StoreError::Config(e.to_string()))
        };
        let options = ClientOptions::new().with_connect_timeout(Duration::from_secs(5));
        let prefix = Key::parse(s.prefix.trim_end_matches('/'))
            .map_err(|e| StoreError::Config(format!("prefix {:?}: {e}", s.prefix)))?;
        Ok(S3Store {
            store: build(options.clone().with_timeout(REQUEST_TIMEOUT))?,
            // No bound on a whole GET: a large file read by a slow client takes long. A
            // store that stops sending is caught by the bound on each read instead.
            reader: build(options.with_timeout_disabled())?,
            prefix,
        })
    }

    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        match self.store.list(Some(&self.prefix)).next().await {
            Some(Err(e)) => Err(io(e)),
            _ => Ok(()),
        }
    }

    fn key(&self, id: &str) -> Key {
        self.prefix.clone().join(id)
    }

    pub(crate) async fn exists(&self, id: &str) -> Result<bool, StoreError> {
        match self.store.head(&self.key(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    pub(crate) fn create(&self, id: &str) -> S3Sink {
        S3Sink {
            store: self.store.clone(),
            key: self.key(id),
            staging: self
                .prefix
                .clone()
                .join(STAGING)
                .join(format!("{id}-{}", upload::new_file_id())),
            held: BytesMut::new(),
            upload: None,
        }
    }

    pub(crate) async fn read(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<FileBody>, StoreError> {
        let options = GetOptions::new().with_range(range);
        let got = match self.reader.get_opts(&self.key(id), options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        // The bound runs only while the listener waits for the next chunk (the timeout is
        // made when it asks), so a slow client never trips it; after it, the body ends.
        let body = futures_util::stream::unfold(Some(got.into_stream()), |stream| async move {
            let mut stream = stream?;
            match tokio::time::timeout(READ_IDLE_TIMEOUT, stream.next()).await {
                Ok(Some(chunk)) => Some((chunk.map_err(std::io::Error::other), Some(stream))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the object store stopped sending",
                    )),
                    None,
                )),
            }
        });
        Ok(Some(body.boxed()))
    }

    pub(crate) async fn remove(&self, id: &str) -> Result<(), StoreError> {
        match self.store.delete(&self.key(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    pub(crate) async fn sweep(&self, before: SystemTime) -> Result<usize, StoreError> {
        let before_ms = before
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let staging = self.prefix.clone().join(STAGING);
        let mut listed = self.store.list(Some(&staging));
        let mut swept = 0;
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(io)?;
            if meta.last_modified.timestamp_millis() < before_ms
                && self.store.delete(&meta.location).await.is_ok()
            {
                swept += 1;
            }
        }
        Ok(swept)
    }
}

/// A body on its way to the bucket: held back, then (past one part) a multipart upload
/// under a staging key. Dropped before it is committed (the request went away), the
/// multipart upload is aborted.
#[derive(Debug)]
pub(crate) struct S3Sink {
    store: Arc<AmazonS3>,
    key: Key,
    staging: Key,
    held: BytesMut,
    /// The multipart upload, once the body is longer than one part; taken when completed
    /// or aborted.
    upload: Option<Box<dyn MultipartUpload>>,
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            // A drop cannot wait; the abort runs on its own (outside a runtime there is
            // nothing to run it, and the store's lifecycle rules have the last word).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(error = %e, "could not abort an abandoned upload");
                    }
                });
            }
        }
    }
}

impl S3Sink {
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.held.extend_from_slice(chunk);
        // Strictly more than a part: a body of exactly one part is one conditional PUT.
        while self.held.len() > PART_BYTES {
            let part = self.held.split_to(PART_BYTES).freeze();
            let upload = match &mut self.upload {
                Some(upload) => upload,
                None => self
                    .upload
                    .insert(self.store.put_multipart(&self.staging).await.map_err(io)?),
            };
            upload.put_part(part.into()).await.map_err(io)?;
        }
        Ok(())
    }

    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        let rest = std::mem::take(&mut self.held).freeze();
        let Some(upload) = self.upload.as_mut() else {
            let put = self
                .store
                .put_opts(&self.key, rest.into(), PutMode::Create.into())
                .await;
            return put.map(drop).map_err(placed);
        };
        let whole = async {
            upload.put_part(rest.into()).await?;
            upload.complete().await
        }
        .await;
        if let Err(e) = whole {
            self.discard().await;
            return Err(io(e));
        }
        // Completed: nothing to abort any more; the staging object is whole.
        self.upload = None;
        let copied = self
            .store
            .copy_if_not_exists(&self.staging, &self.key)
            .await;
        if let Err(e) = self.store.delete(&self.staging).await {
            // The expiry's sweep deletes it later.
            tracing::warn!(error = %e, "could not delete an upload's staging object");
        }
        copied.map_err(placed)
    }

    pub(crate) async fn discard(&mut self) {
        self.held = BytesMut::new();
        if let Some(mut upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(error = %e, "could not abort a refused upload");
            }
        }
    }
}

/// The outcome of a conditional write: a file there already is [`StoreError::Exists`].
fn placed(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            StoreError::Exists
        }
        e => io(e),
    }
}
