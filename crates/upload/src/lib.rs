//! HTTP file upload (XEP-0363): the slot service the router hands `upload.DOMAIN`'s
//! stanzas to ([`UploadService`]), the checks a PUT or GET passes through
//! ([`Uploads::check_put`], [`Uploads::file`]), the store the files' bytes live in
//! ([`FileStore`]: a directory, or a bucket of an S3-compatible object store), the byte
//! ranges a GET may ask for ([`range`]) and the files' expiry.
//!
//! Nothing here touches a socket: the HTTP listener (`parley-http`) carries the bytes and
//! asks this crate what to do with them. A slot is not stored anywhere; its PUT URL carries
//! a signed grant ([`parley_proto::upload::Grant`]) that any node can check with the
//! server secret all nodes share. A file is recorded in storage once its bytes are in,
//! counted against its owner's quota until it expires.

mod files;
mod inflight;
pub mod range;
mod service;
mod settings;
mod store;

pub use files::{FileBody, FileStore, StoreError};
pub use service::UploadService;
pub use settings::{S3Settings, StoreSettings, UploadSettings};
pub use store::{PartialFile, PutError, StoredFile, Uploads};
