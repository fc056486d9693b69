//! HTTP file upload (XEP-0363): the slot service the router hands `upload.DOMAIN`'s
//! stanzas to ([`UploadService`]), the checks a PUT or GET passes through
//! ([`Uploads::check_put`], [`Uploads::file`]), the directory the files live in
//! ([`FileStore`]) and their expiry.
//!
//! Nothing here touches a socket: the HTTP listener (`parley-http`) carries the bytes and
//! asks this crate what to do with them. A slot is not stored anywhere; its PUT URL carries
//! a signed grant ([`parley_proto::upload::Grant`]) that any node can check with the
//! server secret all nodes share. A file is recorded in storage once its bytes are in,
//! counted against its owner's quota until it expires.

mod inflight;
mod service;
mod settings;
mod store;

pub use service::UploadService;
pub use settings::UploadSettings;
pub use store::{FileStore, PartialFile, PutError, StoredFile, Uploads};
