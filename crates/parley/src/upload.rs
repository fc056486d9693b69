//! Wiring of HTTP file upload (XEP-0363): the file store (a directory or `[upload.s3]`) and
//! slot service from `[upload]`, plugged into the router on `upload.` and each served host,
//! and into the HTTP listener.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parley_router::Router;
use parley_storage::Storage;
use parley_upload::{UploadService, Uploads};

use crate::config::Config;

/// How often each node expires files.
const EXPIRY_EVERY: Duration = Duration::from_secs(3600);

/// Starts the upload service when `[upload] enabled`, on every served host's `upload.`
/// domain (added to `services`, which the caller installs in the router); its URLs point at `[upload] url` or `[http] public_url` until the listener's
/// own address is known ([`base_url_after_bind`]).
pub(crate) fn start(
    config: &Config,
    storage: Arc<dyn Storage>,
    secret: Vec<u8>,
    router: &Arc<Router>,
    services: &mut HashMap<String, Arc<dyn parley_router::Service>>,
) -> std::io::Result<Option<Arc<Uploads>>> {
    let c = &config.upload;
    if !c.enabled {
        return Ok(None);
    }
    let base = c.url.clone().or_else(|| {
        config
            .http
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_owned())
    });
    let settings = c
        .settings(&config.server.data_dir)
        .map_err(std::io::Error::other)?;
    let store = match &settings.store {
        parley_upload::StoreSettings::Dir(dir) => format!("directory {}", dir.display()),
        parley_upload::StoreSettings::S3(s3) => format!(
            "bucket {} at {} ([upload.s3])",
            s3.bucket,
            s3.endpoint.as_deref().unwrap_or("Amazon S3")
        ),
    };
    let uploads = Uploads::new(settings, secret, storage)
        .map_err(|e| std::io::Error::other(format!("{store}: {e}")))?;
    // An object store that cannot be reached, or refuses the key, is told now rather than
    // at the first upload; the node starts all the same (the store may come back).
    let probe = uploads.clone();
    tokio::spawn(async move {
        match probe.check_store().await {
            Ok(()) => tracing::info!(store = %store, "upload store reachable"),
            Err(e) => tracing::error!(store = %store, error = %e, "upload store not usable"),
        }
    });
    if let Some(base) = base {
        uploads.set_base_url(base);
    }
    let service: Arc<dyn parley_router::Service> = UploadService::new(uploads.clone(), router);
    services.extend(
        config
            .server
            .hosts
            .iter()
            .map(|host| (format!("{}.{host}", c.subdomain), service.clone())),
    );
    uploads.start_expiry(EXPIRY_EVERY);
    Ok(Some(uploads))
}

/// With neither `[upload] url` nor `[http] public_url`, URLs point at the HTTP listener's
/// bound address.
pub(crate) fn base_url_after_bind(uploads: &Uploads, local: std::net::SocketAddr) {
    uploads.set_base_url(format!("http://{local}"));
}
