//! Wiring of HTTP file upload (XEP-0363): the file store and slot service from `[upload]`,
//! plugged into the router on `upload.` and each served host, and into the HTTP listener.

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
/// domain; its URLs point at `[upload] url` or `[http] public_url` until the listener's
/// own address is known ([`base_url_after_bind`]).
pub(crate) fn start(
    config: &Config,
    storage: Arc<dyn Storage>,
    secret: Vec<u8>,
    router: &Arc<Router>,
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
    let uploads = Uploads::new(c.settings(&config.server.data_dir), secret, storage)?;
    if let Some(base) = base {
        uploads.set_base_url(base);
    }
    let service: Arc<dyn parley_router::Service> = UploadService::new(uploads.clone(), router);
    let services: HashMap<String, Arc<dyn parley_router::Service>> = config
        .server
        .hosts
        .iter()
        .map(|host| (format!("{}.{host}", c.subdomain), service.clone()))
        .collect();
    router.set_services(services);
    uploads.start_expiry(EXPIRY_EVERY);
    Ok(Some(uploads))
}

/// With neither `[upload] url` nor `[http] public_url`, URLs point at the HTTP listener's
/// bound address.
pub(crate) fn base_url_after_bind(uploads: &Uploads, local: std::net::SocketAddr) {
    uploads.set_base_url(format!("http://{local}"));
}
