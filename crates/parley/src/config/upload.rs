//! `[upload]`: HTTP file upload (XEP-0363) at `upload.DOMAIN`, and `[upload.s3]`, the
//! object store its files may live in. Kept apart from `schema.rs` to keep that file
//! readable; the rules are checked here too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::validate::{Quoted, Violation};

/// The largest object S3 copies in one request (UploadPartCopy), which placing a file of
/// several parts takes: 5 GiB.
const MAX_S3_FILE_BYTES: u64 = 5 << 30;

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
    /// Where the files' bytes live: `dir` (a directory) or `s3` (`[upload.s3]`).
    pub store: UploadStore,
    /// With `store = "dir"`: the directory; default `data_dir/uploads`. A cluster's nodes
    /// share one (a shared volume).
    pub dir: Option<PathBuf>,
    /// `[upload.s3]`: the object store, for `store = "s3"`.
    pub s3: Option<UploadS3Config>,
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
            store: UploadStore::Dir,
            dir: None,
            s3: None,
            url: None,
        }
    }
}

/// `[upload] store`: where the files' bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadStore {
    /// One directory (`dir`), shared by a cluster's nodes through a shared volume.
    #[default]
    Dir,
    /// A bucket of an S3-compatible object store (`[upload.s3]`).
    S3,
}

/// `[upload.s3]`: an S3-compatible object store (Amazon S3, MinIO, Ceph, Garage, ...).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadS3Config {
    /// `https://host[:port]` of the store; unset: Amazon S3 in `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket (created beforehand).
    pub bucket: String,
    /// The region requests are signed for.
    #[serde(default = "default_region")]
    pub region: String,
    /// The access key's id.
    pub access_key_id: String,
    /// Its secret; prefer `secret_access_key_file`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// A file whose first line is that secret.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Keys start with this (`parley/uploads/`); empty: none.
    #[serde(default)]
    pub prefix: String,
    /// Whether `endpoint` may be `http://` (a store on loopback or a private network).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl std::fmt::Debug for UploadS3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("UploadS3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl UploadS3Config {
    fn check(&self) -> Result<(), Violation> {
        let bucket_ok = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && self.bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self.bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(Violation::new(
                "upload.s3.bucket",
                Quoted(&self.bucket),
                "must be an S3 bucket name: 3 to 63 lowercase letters, digits, '-' and '.'",
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Violation::new(
                "upload.s3.region",
                Quoted(&self.region),
                "must be a region name such as \"us-east-1\"",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let http = endpoint.starts_with("http://");
            if !(http || endpoint.starts_with("https://")) || endpoint.ends_with('/') {
                return Err(Violation::new(
                    "upload.s3.endpoint",
                    Quoted(endpoint),
                    "must start with https:// (or http://) and not end with /",
                ));
            }
            if http && !self.allow_http {
                return Err(Violation::new(
                    "upload.s3.endpoint",
                    Quoted(endpoint),
                    "is plain HTTP: files and signed requests would cross the network \
                     unencrypted; use https://, or set upload.s3.allow_http = true for a store \
                     on loopback or a private network",
                ));
            }
        }
        if self.access_key_id.is_empty() {
            return Err(Violation::new(
                "upload.s3.access_key_id",
                "\"\"",
                "must be set",
            ));
        }
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(_), Some(_)) => {
                return Err(Violation::new(
                    "upload.s3.secret_access_key",
                    "\"…\"",
                    "set upload.s3.secret_access_key or upload.s3.secret_access_key_file, not both",
                ))
            }
            (None, None) => {
                return Err(Violation::new(
                    "upload.s3.secret_access_key",
                    "unset",
                    "set upload.s3.secret_access_key or upload.s3.secret_access_key_file",
                ))
            }
            (Some(s), None) if s.is_empty() => {
                return Err(Violation::new(
                    "upload.s3.secret_access_key",
                    "\"\"",
                    "must not be empty",
                ))
            }
            (None, Some(path)) => {
                if let Err(e) = self.secret() {
                    return Err(Violation::new(
                        "upload.s3.secret_access_key_file",
                        Quoted(path.display()),
                        e,
                    ));
                }
            }
            _ => {}
        }
        let prefix_ok = self.prefix.is_empty()
            || (self.prefix.len() <= 512
                && self.prefix.trim_end_matches('/').split('/').all(|segment| {
                    !segment.is_empty()
                        && segment != "."
                        && segment != ".."
                        && segment
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                }));
        if !prefix_ok {
            return Err(Violation::new(
                "upload.s3.prefix",
                Quoted(&self.prefix),
                "must be empty or segments of letters, digits, '-', '_' and '.' joined by '/' \
                 (\"parley/uploads/\")",
            ));
        }
        Ok(())
    }

    /// The secret access key, inline or the first line of its file.
    fn secret(&self) -> Result<String, String> {
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
                let first = text.lines().next().unwrap_or("").trim();
                if first.is_empty() {
                    return Err("holds no secret on its first line".into());
                }
                Ok(first.to_owned())
            }
            (None, None) => Err("no secret access key".into()),
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
        if let (UploadStore::S3, Some(dir)) = (self.store, &self.dir) {
            return Err(Violation::new(
                "upload.dir",
                Quoted(dir.display()),
                "is for store = \"dir\"; with store = \"s3\" the files are in [upload.s3]",
            ));
        }
        match (self.store, &self.s3) {
            (UploadStore::Dir, Some(_)) => Err(Violation::new(
                "upload.store",
                "\"dir\"",
                "[upload.s3] is set but unused: set upload.store = \"s3\" to keep the files \
                 there, or remove [upload.s3]",
            )),
            (UploadStore::S3, None) => Err(Violation::new(
                "upload.store",
                "\"s3\"",
                "needs [upload.s3] (bucket, access_key_id, secret_access_key, ...)",
            )),
            (UploadStore::S3, Some(_)) if self.max_file_bytes > MAX_S3_FILE_BYTES => {
                Err(Violation::new(
                    "upload.max_file_bytes",
                    self.max_file_bytes,
                    "must be at most 5368709120 (5 GiB) with store = \"s3\" (the largest \
                     object S3 copies in one request)",
                ))
            }
            (UploadStore::S3, Some(s3)) => s3.check(),
            (UploadStore::Dir, None) => Ok(()),
        }
    }

    /// The service's settings, with the files under `data_dir` unless `dir` or `[upload.s3]`
    /// say otherwise; an error when the secret access key's file cannot be read (it was
    /// when the configuration was checked).
    pub fn settings(&self, data_dir: &Path) -> Result<parley_upload::UploadSettings, String> {
        let store = match (self.store, &self.s3) {
            (UploadStore::S3, Some(s3)) => {
                parley_upload::StoreSettings::S3(parley_upload::S3Settings {
                    endpoint: s3.endpoint.clone(),
                    bucket: s3.bucket.clone(),
                    region: s3.region.clone(),
                    access_key_id: s3.access_key_id.clone(),
                    secret_access_key: s3
                        .secret()
                        .map_err(|e| format!("upload.s3.secret_access_key_file: {e}"))?,
                    prefix: s3.prefix.clone(),
                    allow_http: s3.allow_http,
                })
            }
            _ => parley_upload::StoreSettings::Dir(
                self.dir.clone().unwrap_or_else(|| data_dir.join("uploads")),
            ),
        };
        Ok(parley_upload::UploadSettings {
            max_file_bytes: self.max_file_bytes,
            quota_bytes: self.quota_bytes,
            quota_files: self.quota_files,
            max_uploads_per_user: self.max_uploads_per_user,
            max_in_flight_bytes: self.max_in_flight_bytes,
            max_slot_lookups: self.max_slot_lookups,
            expire_after: Duration::from_secs(self.expire_after_days * 86_400),
            slot_ttl: Duration::from_secs(self.slot_ttl_s),
            allowed_types: self.allowed_types.clone(),
            store,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn err(s: &str) -> String {
        Config::from_toml_str(s, "test.toml")
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn upload_section_is_checked_and_documented() {
        let c = Config::from_toml_str(
            "[http]\nlisten = \"127.0.0.1:5280\"\n[upload]\nenabled = true\nmax_file_bytes = 5\n\
             allowed_types = [\"image/*\", \"application/pdf\"]\n",
            "t",
        )
        .unwrap();
        let s = c.upload.settings(Path::new("/data")).unwrap();
        assert_eq!(s.max_file_bytes, 5);
        assert_eq!(
            s.store,
            parley_upload::StoreSettings::Dir("/data/uploads".into())
        );
        assert!(s.allows("image/webp") && !s.allows("text/html"));
        let mut off = Config::from_toml_str("[upload]\nenabled = true\n", "t").unwrap();
        off.http.listen = None;
        let e = off.validate().unwrap_err().to_string();
        assert!(e.contains("upload.enabled"), "{e}");
        for (toml, key) in [
            ("subdomain = \"up load\"", "upload.subdomain"),
            ("max_file_bytes = 0", "upload.max_file_bytes"),
            ("quota_files = 0", "upload.quota_files"),
            ("max_uploads_per_user = 0", "upload.max_uploads_per_user"),
            ("max_in_flight_bytes = 0", "upload.max_in_flight_bytes"),
            ("max_slot_lookups = 0", "upload.max_slot_lookups"),
            ("expire_after_days = 0", "upload.expire_after_days"),
            ("slot_ttl_s = 1", "upload.slot_ttl_s"),
            ("allowed_types = [\"Image/PNG\"]", "upload.allowed_types"),
            ("allowed_types = [\"*\"]", "upload.allowed_types"),
            ("url = \"ftp://x\"", "upload.url"),
            ("url = \"https://x/\"", "upload.url"),
        ] {
            let e = err(&format!(
                "[http]\nlisten = \"127.0.0.1:5280\"\n[upload]\nenabled = true\n{toml}\n"
            ));
            assert!(e.starts_with(&format!("test.toml: {key}")), "{toml}: {e}");
        }
        let doc = include_str!("../../../../config/parley.toml");
        for key in [
            "[upload]",
            "enabled =",
            "subdomain =",
            "max_file_bytes =",
            "quota_bytes =",
            "quota_files =",
            "max_uploads_per_user =",
            "max_in_flight_bytes =",
            "max_slot_lookups =",
            "expire_after_days =",
            "slot_ttl_s =",
            "allowed_types =",
            "# store =",
            "# dir =",
            "# url =",
            "# [upload.s3]",
            "# endpoint =",
            "# allow_http =",
            "# bucket =",
            "# region =",
            "# access_key_id =",
            "# secret_access_key =",
            "# secret_access_key_file =",
            "# prefix =",
        ] {
            assert!(
                doc.contains(key),
                "config/parley.toml does not document {key}"
            );
        }
    }

    /// `[upload] store = "s3"` with `[upload.s3]`: resolved into the store's settings (the
    /// secret from its file, never printed), and every broken rule named by its key.
    #[test]
    fn upload_s3_store_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s3-secret");
        std::fs::write(&secret, "from-the-file\nsecond line\n").unwrap();
        let base = "[http]\nlisten = \"127.0.0.1:5280\"\n[upload]\nenabled = true\n";
        let good = format!(
            "{base}store = \"s3\"\n[upload.s3]\nendpoint = \"http://127.0.0.1:9000\"\n\
             allow_http = true\nbucket = \"files\"\naccess_key_id = \"k\"\n\
             secret_access_key_file = \"{}\"\nprefix = \"parley/uploads/\"\n",
            secret.display()
        );
        let c = Config::from_toml_str(&good, "t").unwrap();
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("from-the-file"));
        let s = c.upload.settings(Path::new("/data")).unwrap();
        let parley_upload::StoreSettings::S3(s3) = s.store else {
            panic!("not the S3 store: {:?}", s.store);
        };
        assert_eq!(s3.secret_access_key, "from-the-file");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.bucket, "files");
        assert_eq!(s3.prefix, "parley/uploads/");
        assert!(s3.allow_http);
        let inline = good.replace(
            &format!("secret_access_key_file = \"{}\"", secret.display()),
            "secret_access_key = \"sekrit\"",
        );
        let c = Config::from_toml_str(&inline, "t").unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));

        let s3 = "[upload.s3]\nbucket = \"files\"\naccess_key_id = \"k\"\n\
                  secret_access_key = \"s\"\n";
        for (toml, key) in [
            // The section without the choice, the choice without the section.
            (format!("{base}{s3}"), "upload.store"),
            (format!("{base}store = \"s3\"\n"), "upload.store"),
            (
                format!("{base}store = \"s3\"\ndir = \"/x\"\n{s3}"),
                "upload.dir",
            ),
            (
                format!("{base}store = \"s3\"\nmax_file_bytes = 6000000000\n{s3}"),
                "upload.max_file_bytes",
            ),
            (
                format!("{base}store = \"s3\"\n{}", s3.replace("files", "Files_")),
                "upload.s3.bucket",
            ),
            (
                format!("{base}store = \"s3\"\n{s3}region = \"us east\"\n"),
                "upload.s3.region",
            ),
            (
                format!("{base}store = \"s3\"\n{s3}endpoint = \"http://127.0.0.1:9000\"\n"),
                "upload.s3.endpoint",
            ),
            (
                format!("{base}store = \"s3\"\n{s3}endpoint = \"ftp://x\"\n"),
                "upload.s3.endpoint",
            ),
            (
                format!("{base}store = \"s3\"\n{}", s3.replace("\"k\"", "\"\"")),
                "upload.s3.access_key_id",
            ),
            (
                format!(
                    "{base}store = \"s3\"\n{}",
                    s3.replace("secret_access_key = \"s\"\n", "")
                ),
                "upload.s3.secret_access_key",
            ),
            (
                format!("{base}store = \"s3\"\n{s3}secret_access_key_file = \"/x\"\n"),
                "upload.s3.secret_access_key",
            ),
            (
                format!(
                    "{base}store = \"s3\"\n{}secret_access_key_file = \"/nonexistent\"\n",
                    s3.replace("secret_access_key = \"s\"\n", "")
                ),
                "upload.s3.secret_access_key_file",
            ),
            (
                format!("{base}store = \"s3\"\n{s3}prefix = \"a/../b\"\n"),
                "upload.s3.prefix",
            ),
            (
                format!("{base}store = \"s3\"\n{s3}prefix = \"/a\"\n"),
                "upload.s3.prefix",
            ),
        ] {
            let e = err(&toml);
            assert!(e.starts_with(&format!("test.toml: {key}")), "{toml}: {e}");
        }
        // Keys the section does not know, and a store it does not know, are refused as such.
        let e = err(&format!("{base}store = \"s3\"\n{s3}bucket_name = \"x\"\n"));
        assert!(e.contains("upload.s3.bucket_name"), "{e}");
        let e = err(&format!("{base}store = \"ftp\"\n"));
        assert!(e.contains("upload.store"), "{e}");
    }
}
