//! The client-facing HTTP listener (`[http] listen`): XMPP over WebSocket (RFC 7395) at
//! `/xmpp-websocket`, BOSH (XEP-0124/0206) at `/http-bind`, connection-method discovery
//! (XEP-0156) at `/.well-known/host-meta` and `/.well-known/host-meta.json`, CORS for the
//! origins the operator allows, the built-in chat page (`/`, [`crate::web_client`]), and
//! uploaded files (`/upload/…`, XEP-0363, the private `upload` module).
//!
//! It runs its own actix server rather than actix-web's `HttpServer`, so that a load
//! balancer's PROXY protocol header (`[http] proxy_protocol_from`, the private
//! `proxy_header` module) is read off each connection before HTTP starts; the HTTP service
//! is configured as `HttpServer` configures it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_service::{fn_service, map_config, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::origin::cors;
use crate::web_state::WebState;

/// XEP-0156 §3: the XRD form.
async fn host_meta(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    let (ws, bosh) = state.endpoints(&req);
    let body = format!(
        "<?xml version='1.0' encoding='utf-8'?>\n\
         <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  \
         <Link rel='urn:xmpp:alt-connections:websocket' href='{}'/>\n  \
         <Link rel='urn:xmpp:alt-connections:xbosh' href='{}'/>\n</XRD>\n",
        parley_xml::escape::attr(&ws),
        parley_xml::escape::attr(&bosh)
    );
    let resp = HttpResponse::Ok()
        .content_type("application/xrd+xml")
        .body(body);
    cors(&req, &state, resp)
}

/// XEP-0156 §3: the JRD (JSON) form.
async fn host_meta_json(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    let (ws, bosh) = state.endpoints(&req);
    let resp = HttpResponse::Ok().json(serde_json::json!({
        "links": [
            {"rel": "urn:xmpp:alt-connections:websocket", "href": ws},
            {"rel": "urn:xmpp:alt-connections:xbosh", "href": bosh},
        ]
    }));
    cors(&req, &state, resp)
}

/// CORS preflight.
async fn preflight(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    cors(&req, &state, HttpResponse::NoContent().finish())
}

/// Starts the HTTP listener on `addr`; returns the bound address and the server future.
pub fn web_server(state: Arc<WebState>, addr: SocketAddr) -> std::io::Result<(SocketAddr, Server)> {
    let bosh = state.bosh.clone();
    actix_rt::spawn(async move {
        let mut tick = actix_rt::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            bosh.sweep();
        }
    });
    let proxy = state.proxy.clone();
    let data = web::Data::from(state);
    let listener = parley_transport::bind_listener(addr).map_err(std::io::Error::other)?;
    let local = listener.local_addr()?;
    let server = Server::build()
        .workers(1)
        .disable_signals()
        .listen("parley-web", listener, move || {
            let app = App::new()
                .app_data(data.clone())
                .route("/xmpp-websocket", web::get().to(crate::ws::websocket))
                .route("/http-bind", web::post().to(crate::bosh::http_bind))
                .route("/.well-known/host-meta", web::get().to(host_meta))
                .route("/.well-known/host-meta.json", web::get().to(host_meta_json))
                .route("/", web::get().to(crate::web_client::page))
                .route("/upload/{tail:.*}", web::put().to(crate::upload::put))
                .route("/upload/{tail:.*}", web::get().to(crate::upload::get))
                .route("/upload/{tail:.*}", web::head().to(crate::upload::get))
                // A web client's PUT from its own origin is preflighted (CORS).
                .route(
                    "/upload/{tail:.*}",
                    web::route()
                        .method(actix_web::http::Method::OPTIONS)
                        .to(preflight),
                )
                .route(
                    &format!("{}/{{tail:.*}}", crate::web_client::ASSETS_PATH),
                    web::get().to(crate::web_client::asset),
                )
                .default_service(
                    web::route()
                        .method(actix_web::http::Method::OPTIONS)
                        .to(preflight),
                );
            let app = actix_service::IntoServiceFactory::into_factory(app)
                .map_err(|err: actix_web::Error| err.error_response());
            // As actix-web's HttpServer sets them up.
            let mut http = HttpService::build()
                .keep_alive(actix_http::KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(true)
                .local_addr(local);
            if proxy.is_some() {
                // Only then is there a client to hand each request (connection data).
                http = http.on_connect_ext(crate::proxy_header::on_connect);
            }
            let http = http.finish(map_config(app, move |_| {
                AppConfig::__priv_test_new(false, local.to_string(), local)
            }));
            let proxy = proxy.clone();
            fn_service(move |io: tokio::net::TcpStream| {
                let proxy = proxy.clone();
                async move {
                    let peer = io.peer_addr().ok();
                    let io = crate::proxy_header::accept(io, peer, proxy.as_deref()).await?;
                    Ok((io, Protocol::Http1, peer))
                }
            })
            .and_then(http)
        })?
        .run();
    Ok((local, server))
}
