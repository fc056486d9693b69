//! The built-in chat page (`[http] web_client`): Converse.js at `/`, logging in to this
//! server over WebSocket (RFC 7395) or BOSH (XEP-0206) on the page's own origin.
//!
//! The page is what makes "open a browser and chat" work with nothing else deployed, also
//! behind a round-robin load balancer: its endpoints are same-origin, so every node serves
//! the same page and any node takes the connection (BOSH requests are forwarded to the
//! session's node). Converse.js itself is bundled into the binary (a pinned, tested build:
//! `assets/converse/`, see its VERSION), so the page works with no Internet; a site may serve
//! its own copy of Converse's `dist` directory (`[http] converse_dist`) or point at a CDN
//! (`[http] converse_url`) instead. Whatever the source, a page whose Converse.js does not
//! load, or is not one it can start, says so on the page and in the browser's console
//! rather than staying blank.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::web_state::WebState;

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/converse_assets.rs"));
}

/// The Converse.js version bundled into the binary.
pub const BUNDLED_CONVERSE: &str = bundle::CONVERSE_VERSION;

/// Where the page loads Converse.js from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assets {
    /// The copy bundled into the binary, served at [`ASSETS_PATH`] (the default).
    Bundled,
    /// A URL of Converse's `dist` directory, e.g. `https://cdn.conversejs.org/12.0.0/dist`.
    Url(String),
    /// A local copy of Converse's `dist` directory, served at [`ASSETS_PATH`].
    Dir(PathBuf),
}

/// Where a local [`Assets::Dir`] is served.
pub const ASSETS_PATH: &str = "/converse/dist";

/// The chat page's settings.
#[derive(Debug, Clone)]
pub struct WebClient {
    /// The domain a bare username in the login form belongs to (the first `[server] hosts`).
    pub domain: String,
    /// Where Converse.js comes from.
    pub assets: Assets,
}

impl WebClient {
    fn assets_base(&self) -> &str {
        match &self.assets {
            Assets::Url(url) => url.trim_end_matches('/'),
            Assets::Dir(_) | Assets::Bundled => ASSETS_PATH,
        }
    }

    /// The page. `endpoints` are absolute (`public_url`) or None for "this page's origin",
    /// which the page works out itself so that it is right behind any proxy.
    pub fn render(&self, endpoints: Option<(&str, &str)>) -> String {
        let base = self.assets_base();
        let endpoints_js = match endpoints {
            Some((ws, bosh)) => format!("const ws = {};\nconst bosh = {};", js(ws), js(bosh)),
            None => "const ws = (location.protocol === 'https:' ? 'wss://' : 'ws://') + \
                     location.host + '/xmpp-websocket';\nconst bosh = location.origin + \
                     '/http-bind';"
                .to_owned(),
        };
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat · {title}</title>
<link rel="stylesheet" href="{base_attr}/converse.min.css">
<script>
// Shown instead of a blank page when Converse.js does not load or cannot start.
function parleyFail(why) {{
  window.parleyWhy = window.parleyWhy || why;
  const box = document.getElementById('parley-error');
  // The script's onerror can fire before the body exists: show it once the page is there.
  if (!box) return document.addEventListener('DOMContentLoaded', () => parleyFail(why), {{ once: true }});
  box.textContent = 'The chat client (Converse.js from ' + {assets} + ') ' + why +
    '. Ask the server\'s administrator ([http] converse_dist, converse_url).';
  box.hidden = false;
  console.error('parley: Converse.js ' + why);
}}
</script>
<script src="{base_attr}/converse.min.js" charset="utf-8" onerror="parleyFail('could not be loaded')"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript.</noscript>
<div id="parley-error" role="alert" hidden style="margin:2em;padding:1em;border:1px solid #a00;color:#a00;font:16px sans-serif"></div>
<script>
if (typeof converse === 'undefined' || typeof converse.initialize !== 'function') {{
  if (!window.parleyWhy) parleyFail('is missing or is not a version this page can start');
  throw new Error('Converse.js unavailable');
}}
{endpoints_js}
// ?transport=bosh forces BOSH (for networks that break WebSocket); WebSocket otherwise.
// ?loglevel=debug shows Converse's log (and the XML) in the browser console.
const query = new URLSearchParams(location.search);
const transport = query.get('transport');
const settings = {{
  view_mode: 'fullscreen',
  default_domain: {domain},
  assets_path: {assets},
  discover_connection_methods: false,
  auto_reconnect: true,
  allow_registration: false,
  theme: 'concord',
}};
if (['debug', 'info', 'warn', 'error'].includes(query.get('loglevel'))) settings.loglevel = query.get('loglevel');
if (transport === 'bosh') settings.bosh_service_url = bosh;
else settings.websocket_url = ws;
converse.initialize(settings);
</script>
</body>
</html>
"#,
            title = html(&self.domain),
            base_attr = html(base),
            domain = js(&self.domain),
            assets = js(base),
        )
    }
}

/// A string as a JavaScript literal inside a `<script>` element (JSON, with `<` escaped so
/// that no `</script>` can end the element early).
fn js(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".to_owned())
        .replace('<', "\\u003c")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `GET /`: the chat page (404 when `[http] web_client` is off).
pub(crate) async fn page(state: web::Data<WebState>) -> HttpResponse {
    let Some(client) = &state.web_client else {
        return HttpResponse::NotFound().finish();
    };
    let endpoints = state.public_endpoints();
    let body = client.render(endpoints.as_ref().map(|(w, b)| (w.as_str(), b.as_str())));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

/// `GET /converse/dist/{path}`: a file of the local Converse.js copy.
pub(crate) async fn asset(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    let tail = req.match_info().get("tail").unwrap_or_default();
    let root = match &state.web_client {
        Some(WebClient {
            assets: Assets::Dir(root),
            ..
        }) => root,
        Some(WebClient {
            assets: Assets::Bundled,
            ..
        }) => {
            return match bundle::CONVERSE_FILES
                .iter()
                .find(|(path, _)| *path == tail)
            {
                Some((path, bytes)) => HttpResponse::Ok()
                    .content_type(content_type(Path::new(path)))
                    // The bundle changes only with the binary.
                    .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
                    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .body(*bytes),
                None => HttpResponse::NotFound().finish(),
            };
        }
        _ => return HttpResponse::NotFound().finish(),
    };
    let Some(file) = resolve(root, tail) else {
        return HttpResponse::NotFound().finish();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type(content_type(&file))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(bytes),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

/// The file `tail` names under `root`, or None if it would leave `root` (`..`, an absolute
/// path, a symlink pointing out), names a hidden file, or is not a regular file.
fn resolve(root: &Path, tail: &str) -> Option<PathBuf> {
    if tail.is_empty() || tail.contains('\\') || tail.contains('\0') {
        return None;
    }
    let rel = Path::new(tail);
    let mut path = root.to_path_buf();
    for part in rel.components() {
        match part {
            Component::Normal(name) if !name.to_string_lossy().starts_with('.') => {
                path.push(name);
            }
            _ => return None,
        }
    }
    let real = path.canonicalize().ok()?;
    let real_root = root.canonicalize().ok()?;
    (real.starts_with(&real_root) && real.is_file()).then_some(real)
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dist/locales")).unwrap();
        std::fs::write(dir.path().join("dist/converse.min.js"), "/* js */").unwrap();
        std::fs::write(dir.path().join("dist/locales/de.js"), "/* de */").unwrap();
        std::fs::write(dir.path().join("dist/.hidden"), "no").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        dir
    }

    #[test]
    fn files_under_the_root_are_served() {
        let dir = dist();
        let root = dir.path().join("dist");
        assert!(resolve(&root, "converse.min.js").is_some());
        assert!(resolve(&root, "locales/de.js").is_some());
        assert!(resolve(&root, "./converse.min.js").is_none());
    }

    #[test]
    fn nothing_outside_the_root_or_hidden_is_served() {
        let dir = dist();
        let root = dir.path().join("dist");
        for tail in [
            "../secret.txt",
            "locales/../../secret.txt",
            "/etc/passwd",
            ".hidden",
            "locales",
            "",
            "..\\secret.txt",
            "missing.js",
        ] {
            assert!(resolve(&root, tail).is_none(), "{tail}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt"))
                .unwrap();
            assert!(
                resolve(&root, "link.txt").is_none(),
                "a symlink out of the root"
            );
        }
    }

    #[test]
    fn the_page_escapes_what_it_embeds() {
        let client = WebClient {
            domain: "ex</script><b>".into(),
            assets: Assets::Url("https://cdn.example/dist/".into()),
        };
        let page = client.render(None);
        assert!(!page.contains("ex</script>"), "{page}");
        assert!(
            page.contains(r#"default_domain: "ex\u003c/script>\u003cb>""#),
            "{page}"
        );
        assert!(page.contains(r#"href="https://cdn.example/dist/converse.min.css""#));
        assert!(page.contains("<title>Chat · ex&lt;/script&gt;&lt;b&gt;</title>"));
        assert!(page.contains("location.host + '/xmpp-websocket'"));
    }

    #[test]
    fn a_public_url_fixes_the_endpoints_and_local_assets_are_served_here() {
        let client = WebClient {
            domain: "example.org".into(),
            assets: Assets::Dir("/srv/converse/dist".into()),
        };
        let page = client.render(Some((
            "wss://chat.example.org/xmpp-websocket",
            "https://chat.example.org/http-bind",
        )));
        assert!(page.contains(r#"const ws = "wss://chat.example.org/xmpp-websocket";"#));
        assert!(page.contains(r#"const bosh = "https://chat.example.org/http-bind";"#));
        assert!(page.contains(r#"<script src="/converse/dist/converse.min.js""#));
        assert!(page.contains(r#"assets_path: "/converse/dist","#));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(Path::new("a/converse.min.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.woff2")), "font/woff2");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
