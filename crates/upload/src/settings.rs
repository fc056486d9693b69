//! What the upload service needs from `[upload]`, resolved by the binary.

use std::path::PathBuf;
use std::time::Duration;

/// The upload service's settings.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Bytes of live files one account may have.
    pub quota_bytes: u64,
    /// Live files one account may have.
    pub quota_files: u64,
    /// Uploads one account may have in progress at once.
    pub max_uploads_per_user: usize,
    /// Bytes of uploads in progress on this node at once.
    pub max_in_flight_bytes: u64,
    /// Slot requests whose quota is being read at once (the rest are asked to wait).
    pub max_slot_lookups: usize,
    /// How long a file is kept after its upload.
    pub expire_after: Duration,
    /// How long a slot's PUT URL may be used.
    pub slot_ttl: Duration,
    /// Media types accepted (`image/png`, or `image/*` for a whole kind); empty: any.
    pub allowed_types: Vec<String>,
    /// Where the files' bytes live.
    pub store: StoreSettings,
}

/// Where the files' bytes live (`[upload] store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// One directory (shared by the nodes of a cluster through a shared volume).
    Dir(PathBuf),
    /// A bucket of an S3-compatible object store.
    S3(S3Settings),
}

/// `[upload.s3]`: an S3-compatible object store.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `https://host[:port]` of the store; None: Amazon S3 for the region.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Keys start with this (`uploads/`), so one bucket can hold other things; empty: none.
    pub prefix: String,
    /// Whether an `http://` endpoint is accepted (a store on loopback or a private network).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret key.
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl UploadSettings {
    /// Whether files of `content_type` may be uploaded.
    pub fn allows(&self, content_type: &str) -> bool {
        self.allowed_types.is_empty()
            || self
                .allowed_types
                .iter()
                .any(|t| match t.strip_suffix("/*") {
                    Some(kind) => content_type.split_once('/').is_some_and(|(k, _)| k == kind),
                    None => t == content_type,
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_types_match_whole_kinds_or_exact_types() {
        let mut s = UploadSettings {
            max_file_bytes: 1,
            quota_bytes: 1,
            quota_files: 1,
            max_uploads_per_user: 1,
            max_in_flight_bytes: 1,
            max_slot_lookups: 1,
            expire_after: Duration::from_secs(1),
            slot_ttl: Duration::from_secs(1),
            allowed_types: vec![],
            store: StoreSettings::Dir(PathBuf::from("/tmp")),
        };
        assert!(s.allows("application/x-anything"));
        s.allowed_types = vec!["image/*".into(), "application/pdf".into()];
        assert!(s.allows("image/png"));
        assert!(s.allows("application/pdf"));
        assert!(!s.allows("application/pdfx"));
        assert!(!s.allows("imagex/png"));
        assert!(!s.allows("text/html"));
    }

    #[test]
    fn the_secret_key_is_never_printed() {
        let s = S3Settings {
            endpoint: None,
            bucket: "b".into(),
            region: "r".into(),
            access_key_id: "id".into(),
            secret_access_key: "hunter2".into(),
            prefix: String::new(),
            allow_http: false,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
