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
    /// The directory the files live in.
    pub dir: PathBuf,
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
            dir: PathBuf::from("/tmp"),
        };
        assert!(s.allows("application/x-anything"));
        s.allowed_types = vec!["image/*".into(), "application/pdf".into()];
        assert!(s.allows("image/png"));
        assert!(s.allows("application/pdf"));
        assert!(!s.allows("application/pdfx"));
        assert!(!s.allows("imagex/png"));
        assert!(!s.allows("text/html"));
    }
}
