//! Files shared by HTTP upload (XEP-0363) as stored: one row per file (its id, owner, name,
//! type, size, and when it expires), for serving it, counting its owner's quota and
//! expiring it. The bytes live elsewhere (a directory, see `parley-upload`). Part of every
//! [`Storage`](crate::Storage) (a supertrait), written once for both SQL backends in
//! `shared/uploads.rs`.
//!
//! A file counts against its owner's quota until it expires. It outlives its owner's account
//! until then, like a message already sent: others were given its link. Adding one checks the quota
//! and inserts under the owner's lock, so two uploads racing cannot both pass it.

use crate::Result;

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Its unguessable id (`parley_proto::upload::new_file_id`).
    pub id: String,
    /// The uploader's account.
    pub username: String,
    pub host: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// How much one account may keep at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    pub bytes: u64,
    pub files: u64,
}

/// What adding a file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadAdded {
    Added,
    /// The owner's live files and this one would pass the quota: nothing stored.
    OverQuota,
    /// A file with this id exists already: nothing stored.
    Exists,
}

/// The uploads part of a store.
#[async_trait::async_trait]
pub trait Uploads: Send + Sync {
    /// Records `file` unless its owner's files alive at its creation, with it, would pass
    /// `quota`, or its id is taken.
    async fn upload_add(&self, file: &UploadRecord, quota: UploadQuota) -> Result<UploadAdded>;

    /// The file `id`, expired or not.
    async fn upload_get(&self, id: &str) -> Result<Option<UploadRecord>>;

    /// Bytes and number of `username@host`'s files alive at `now_ms`.
    async fn upload_usage(&self, username: &str, host: &str, now_ms: i64) -> Result<(u64, u64)>;

    /// Deletes up to `limit` files expired at `now_ms`; their ids, for their bytes to go.
    async fn upload_expire(&self, now_ms: i64, limit: u32) -> Result<Vec<String>>;
}
