//! `[upload]`: HTTP file upload (XEP-0363) at `upload.DOMAIN`. Kept apart from `schema.rs`
//! to keep that file readable; the rules are checked here too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::validate::Violation;

/// `[upload]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Off by default: it stores what users send, and needs the HTTP listener.
    pub enabled: bool,
    /// The service's domain is this label, a dot, and each served host.
    pub subdomain: String,
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Bytes of live files one account may keep.
    pub quota_bytes: u64,
    /// Live files one account may keep.
    pub quota_files: u64,
    /// Uploads one account may have in progress at once, per node.
    pub max_uploads_per_user: usize,
    /// Bytes of uploads in progress on a node at once.
    pub max_in_flight_bytes: u64,
    /// Slot requests whose quota a node reads at once; more are asked to wait.
    pub max_slot_lookups: usize,
    /// Days a file lives after its upload.
    pub expire_after_days: u64,
    /// Seconds a slot's upload URL is valid.
    pub slot_ttl_s: u64,
    /// Media types accepted (`image/png`, `image/*`); empty: any.
    pub allowed_types: Vec<String>,
    /// Where the files live; default `data_dir/uploads`. A cluster's nodes share one
    /// (a shared volume).
    pub dir: Option<PathBuf>,
    /// The HTTP listener's address as clients reach it, for the URLs handed out; default
    /// `[http] public_url`, else `http://` and the listener's address.
    pub url: Option<String>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            enabled: false,
            subdomain: "upload".into(),
            max_file_bytes: 100 * 1024 * 1024,
            quota_bytes: 1024 * 1024 * 1024,
            quota_files: 1000,
            max_uploads_per_user: 4,
            max_in_flight_bytes: 1024 * 1024 * 1024,
            max_slot_lookups: 64,
            expire_after_days: 7,
            slot_ttl_s: 300,
            allowed_types: Vec::new(),
            dir: None,
            url: None,
        }
    }
}

impl UploadConfig {
    pub(super) fn check(&self, http_listens: bool) -> Result<(), Violation> {
        if !self.enabled {
            return Ok(());
        }
        if !http_listens {
            return Err(Violation::new(
                "upload.enabled",
                true,
                "needs the HTTP listener ([http] listen) to carry the files",
            ));
        }
        let label_ok = !self.subdomain.is_empty()
            && self.subdomain.len() <= 63
            && self
                .subdomain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !self.subdomain.starts_with('-')
            && !self.subdomain.ends_with('-');
        if !label_ok {
            return Err(Violation::new(
                "upload.subdomain",
                &self.subdomain,
                "must be one DNS label (letters, digits, hyphens)",
            ));
        }
        for (key, value) in [
            ("upload.max_file_bytes", self.max_file_bytes),
            ("upload.quota_bytes", self.quota_bytes),
            ("upload.quota_files", self.quota_files),
            (
                "upload.max_uploads_per_user",
                self.max_uploads_per_user as u64,
            ),
            ("upload.max_in_flight_bytes", self.max_in_flight_bytes),
            ("upload.max_slot_lookups", self.max_slot_lookups as u64),
        ] {
            if value == 0 {
                return Err(Violation::new(key, value, "must be at least 1"));
            }
        }
        if self.expire_after_days == 0 || self.expire_after_days > 3650 {
            return Err(Violation::new(
                "upload.expire_after_days",
                self.expire_after_days,
                "must be 1 to 3650",
            ));
        }
        if self.slot_ttl_s < 10 || self.slot_ttl_s > 86_400 {
            return Err(Violation::new(
                "upload.slot_ttl_s",
                self.slot_ttl_s,
                "must be 10 to 86400",
            ));
        }
        for t in &self.allowed_types {
            let essence = t.strip_suffix("/*").map(|k| format!("{k}/x"));
            let ok = parley_proto::upload::media_type(essence.as_deref().unwrap_or(t))
                .is_some_and(|m| t.ends_with("/*") || m == *t);
            if !ok {
                return Err(Violation::new(
                    "upload.allowed_types",
                    t,
                    "each must be a lowercase media type (`image/png`) or a kind (`image/*`)",
                ));
            }
        }
        if let Some(url) = &self.url {
            let ok =
                (url.starts_with("https://") || url.starts_with("http://")) && !url.ends_with('/');
            if !ok {
                return Err(Violation::new(
                    "upload.url",
                    url,
                    "must start with http:// or https:// and not end with /",
                ));
            }
        }
        Ok(())
    }

    /// The service's settings, with the files under `data_dir` unless `dir` says otherwise.
    pub fn settings(&self, data_dir: &Path) -> parley_upload::UploadSettings {
        parley_upload::UploadSettings {
            max_file_bytes: self.max_file_bytes,
            quota_bytes: self.quota_bytes,
            quota_files: self.quota_files,
            max_uploads_per_user: self.max_uploads_per_user,
            max_in_flight_bytes: self.max_in_flight_bytes,
            max_slot_lookups: self.max_slot_lookups,
            expire_after: Duration::from_secs(self.expire_after_days * 86_400),
            slot_ttl: Duration::from_secs(self.slot_ttl_s),
            allowed_types: self.allowed_types.clone(),
            dir: self.dir.clone().unwrap_or_else(|| data_dir.join("uploads")),
        }
    }
}
