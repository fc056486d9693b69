//! Start-up wiring: storage, TLS, router, worker arbiters and listeners; and the end of a
//! node's life: a drain (SIGTERM, the admin API; see `drain.rs`) or a plain shutdown.
//!
//! The server runs its actix system on a thread of its own, so that the same code serves
//! `parley serve` (which blocks until a signal) and integration tests (which start servers
//! in-process on ephemeral ports and stop them when done).
//!
//! Longer than 800 lines: `setup` builds every part in the order they depend on each other
//! (storage, TLS, router, users, cluster, services, listeners), handing each the handles the
//! next needs; it is one long, straight sequence rather than many small functions passing a
//! dozen handles around.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_rt::{Arbiter, System};
use parley_cluster::auth::ClusterSecret;
use parley_cluster::etcd_access::{EtcdAccess, EtcdAccessConfig};
use parley_cluster::node::{ClusterSettings, Node};
use parley_cluster::peer::LinkConfig;
use parley_http::{admin_server, web_server, AdminState, WebState};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, Router};
use parley_session::{SessionConfig, SessionEnv};
use parley_transport::{bind_listener, serve_c2s, ListenerKind, TlsCell, TlsSetup};
use parley_user::{UserConfig, Users};
use parley_xml::Limits;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::oneshot;
use tracing::info;

use crate::config::Config;
use crate::drain::{DrainPlan, DrainSwitch};
use parley_http::NodeDrain;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Anything that prevents start-up, with a message that names its cause.
    #[error("{0}")]
    Start(String),
}

/// How long shutdown waits for sessions to flush their `<system-shutdown/>`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A running server.
pub struct ServerHandle {
    /// Bound STARTTLS c2s addresses (useful when the config asked for port 0).
    pub c2s: Vec<SocketAddr>,
    /// Bound direct-TLS c2s addresses.
    pub direct_tls: Vec<SocketAddr>,
    /// Bound component (XEP-0114) addresses.
    pub component: Vec<SocketAddr>,
    /// Bound server-to-server addresses: STARTTLS, then direct TLS.
    pub s2s: [Vec<SocketAddr>; 2],
    /// The routing table, for tests and the admin API.
    pub router: Arc<Router>,
    /// The bound admin endpoint, if enabled.
    pub admin: Option<SocketAddr>,
    /// The bound HTTP listener (WebSocket), if enabled.
    pub http: Option<SocketAddr>,
    drain: Arc<DrainSwitch>,
    /// What SIGHUP changes: the TLS certificate for new connections, and the settings that
    /// can change while the server runs (reload.rs).
    pub reload: Arc<crate::reload::Reload>,
    /// Fires (or is dropped) when the server thread ends by itself, after a drain.
    done: Option<oneshot::Receiver<()>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Starts draining the node (what SIGTERM does): false when it was draining already.
    /// The server thread ends by itself once the drain is over.
    pub fn drain(&self) -> bool {
        self.drain.start()
    }

    /// Closes every session with `<system-shutdown/>`, stops listening and waits for the
    /// server thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs the server until it has drained (after SIGTERM or SIGINT, or a drain asked through
/// the admin API) or a second signal stops it at once. Blocks the calling thread; returning
/// Ok means exit status 0, which tells an orchestrator to start the node again.
pub fn run(config: Config, config_path: Option<std::path::PathBuf>) -> Result<(), ServerError> {
    let mut handle = start(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Start(format!("signal runtime: {e}")))?;
    let mut done = handle
        .done
        .take()
        .ok_or_else(|| ServerError::Start("the server has no completion signal".into()))?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| ServerError::Start(format!("installing the SIGTERM handler: {e}")))?;
        let mut hup = signal(SignalKind::hangup())
            .map_err(|e| ServerError::Start(format!("installing the SIGHUP handler: {e}")))?;
        // Every listener is bound: systemd (Type=notify) may count the service as started.
        crate::notify::notify("READY=1\nSTATUS=serving");
        let signal = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break "SIGINT",
                _ = term.recv() => break "SIGTERM",
                _ = hup.recv() => {
                    crate::notify::notify("RELOADING=1\nSTATUS=reloading the certificate and settings");
                    handle.reload.on_sighup(config_path.as_deref());
                    crate::notify::notify("READY=1\nSTATUS=serving");
                }
                // A drain asked through the admin API is over.
                _ = &mut done => return Ok(()),
            }
        };
        crate::notify::notify("STOPPING=1\nSTATUS=draining");
        if handle.drain() {
            info!("{signal}: draining (a second SIGTERM or SIGINT stops at once)");
        } else {
            // Kubernetes' SIGTERM after a preStop `parley node drain`: it joins that drain.
            info!("{signal}: already draining (a second SIGTERM or SIGINT stops at once)");
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT during the drain: stopping now"),
            _ = term.recv() => info!("SIGTERM during the drain: stopping now"),
            _ = &mut done => {}
        }
        Ok::<(), ServerError>(())
    })?;
    // After a finished drain the thread has ended and this only joins it; otherwise it cuts
    // the drain short: what is left is closed with <system-shutdown/>.
    handle.stop();
    Ok(())
}

/// Starts the server on its own thread and returns once every listener is bound.
pub fn start(config: Config) -> Result<ServerHandle, ServerError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("parley".into())
        .spawn(move || {
            let system = System::new();
            system.block_on(async move {
                let running = match setup(&config).await {
                    Ok(running) => running,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((
                    [
                        running.c2s.clone(),
                        running.direct_tls.clone(),
                        running.component.clone(),
                        running.s2s[0].clone(),
                        running.s2s[1].clone(),
                    ],
                    running.router.clone(),
                    running.admin,
                    running.http,
                    running.drain.clone(),
                    running.reload.clone(),
                )));
                let drain = running.drain.clone();
                let draining = tokio::select! {
                    _ = &mut stop_rx => false,
                    () = drain.requested() => true,
                };
                if draining {
                    running.drain(&mut stop_rx).await;
                }
                running.shutdown().await;
            });
            let _ = done_tx.send(());
        })
        .map_err(|e| ServerError::Start(format!("spawning the server thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok((
            [c2s, direct_tls, component, s2s, s2s_tls],
            router,
            admin,
            http,
            drain,
            reload,
        ))) => Ok(ServerHandle {
            c2s,
            direct_tls,
            component,
            s2s: [s2s, s2s_tls],
            router,
            admin,
            http,
            drain,
            reload,
            done: Some(done_rx),
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ServerError::Start(
                "the server thread ended during start-up".into(),
            ))
        }
    }
}

struct Running {
    c2s: Vec<SocketAddr>,
    direct_tls: Vec<SocketAddr>,
    component: Vec<SocketAddr>,
    s2s: [Vec<SocketAddr>; 2],
    router: Arc<Router>,
    users: Arc<Users>,
    admin: Option<SocketAddr>,
    http: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
    workers: Vec<Arbiter>,
    cluster: Option<Arc<Node>>,
    drain: Arc<DrainSwitch>,
    drain_plan: DrainPlan,
    reload: Arc<crate::reload::Reload>,
}

impl Running {
    /// The drain proper, between the switch (readiness false, listeners refusing) and the
    /// shutdown: in a cluster, clients are asked to move and the node stays a member until
    /// it is empty or the drain timeout has passed; `stop` cuts it short. A single node has
    /// nowhere to send clients or hand sessions to: its drain is the plain shutdown.
    async fn drain(&self, stop: &mut oneshot::Receiver<()>) {
        if self.cluster.is_none() {
            info!("drain of a single node: shutting down");
            return;
        }
        info!(
            sessions = self.router.session_count(),
            timeout_s = self.drain_plan.timeout.as_secs(),
            reason = ?self.drain_plan.reason,
            "draining: asking clients to move"
        );
        tokio::select! {
            empty = crate::drain::move_sessions(&self.router, &self.drain_plan) => if !empty {
                tracing::warn!(
                    sessions = self.router.session_count(),
                    "drain timeout ([cluster] drain_timeout_s): ending the sessions left"
                );
            },
            _ = stop => info!("stop requested during the drain"),
        }
    }

    async fn shutdown(self) {
        // Load balancers stop sending clients first.
        self.ready.store(false, Ordering::Release);
        let sessions = self.router.all_sessions();
        info!(sessions = sessions.len(), "closing sessions");
        for s in &sessions {
            s.close(CloseReason::with_text(
                StreamCondition::SystemShutdown,
                "the server is shutting down",
            ));
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.router.session_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Unavailable broadcasts and roster or offline writes triggered by the closes finish
        // before the worker threads go.
        self.users.drain(SHUTDOWN_GRACE).await;
        // Every key of this node goes at once, instead of when the lease would expire.
        if let Some(node) = &self.cluster {
            node.leave().await;
        }
        for w in self.workers {
            w.stop();
            let _ = w.join();
        }
        System::current().stop();
    }
}

async fn setup(config: &Config) -> Result<Running, ServerError> {
    let err = |what: &str, e: &dyn std::fmt::Display| ServerError::Start(format!("{what}: {e}"));
    let storage_url = config.storage_url();
    let storage = parley_storage::open_with(&storage_url, config.storage_options())
        .await
        .map_err(|e| err("storage", &e))?;
    let server_secret = storage
        .server_secret()
        .await
        .map_err(|e| err("storage", &e))?;
    let tls = TlsSetup::load(
        config.tls.cert.as_deref(),
        config.tls.key.as_deref(),
        &config.server.data_dir,
        &config.server.hosts,
    )
    .map_err(|e| err("tls", &e))?;
    let router = Arc::new(Router::new(config.server.hosts.iter().cloned()));
    router.set_max_resources(config.quotas.resources_per_account);
    let component_secrets = config.component_secrets().map_err(ServerError::Start)?;
    router.set_components(component_secrets.iter().map(|(d, _)| d.clone()));
    let mut services = std::collections::HashMap::new();
    let uploads = crate::upload::start(
        config,
        storage.clone(),
        server_secret.clone(),
        &router,
        &mut services,
    )
    .map_err(|e| err("upload store ([upload] dir or [upload.s3])", &e))?;
    let n = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let workers: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
    let handles = Arc::new(workers.iter().map(Arbiter::handle).collect::<Vec<_>>());
    let users = Users::new(
        router.clone(),
        storage.clone(),
        UserConfig {
            max_roster_items: config.roster.max_items,
            max_offline: config.offline.max_per_user,
            ..user_config(config)
        },
        handles.to_vec(),
    );
    let ready = Arc::new(AtomicBool::new(false));
    let node_id = config
        .cluster
        .as_ref()
        .map_or_else(crate::config::host_name, |c| c.node_id());
    let cluster = match &config.cluster {
        None => None,
        Some(c) => {
            let https = c.etcd.iter().all(|u| u.starts_with("https://"));
            let etcd_access = EtcdAccess::load(
                https,
                &EtcdAccessConfig {
                    ca: c.etcd_ca.as_deref(),
                    cert: c.etcd_cert.as_deref(),
                    key: c.etcd_key.as_deref(),
                    user: c.etcd_user.as_deref(),
                    password: c.etcd_password.as_deref(),
                    password_file: c.etcd_password_file.as_deref(),
                },
            )
            .map_err(|e| err("cluster", &e))?
            .with_max_message_bytes(c.etcd_max_message_bytes);
            let settings = ClusterSettings {
                etcd: c.etcd.clone(),
                etcd_access,
                node_id: node_id.clone(),
                peer_listen: c.peer_listen,
                peer_advertise: c.peer_advertise(),
                lease_ttl_s: c.lease_ttl_s as i64,
                prefix: c.prefix.clone(),
                link: LinkConfig {
                    max_frame: c.max_frame_bytes,
                    max_queued_bytes: c.send_queue_bytes,
                    handshake_timeout: Duration::from_millis(c.handshake_timeout_ms),
                    ..LinkConfig::default()
                },
                secret: match (&c.secret, &c.secret_file) {
                    (Some(s), _) => Some(std::sync::Arc::new(
                        ClusterSecret::new(s).map_err(|e| err("cluster", &e))?,
                    )),
                    (None, Some(path)) => Some(std::sync::Arc::new(
                        ClusterSecret::from_file(path).map_err(|e| err("cluster", &e))?,
                    )),
                    (None, None) => None,
                },
                max_links_per_address: c.max_links_per_address,
                registry_wait: Duration::from_millis(c.registry_wait_ms),
                registry_wait_frames: c.registry_wait_frames,
                registry_wait_bytes: c.registry_wait_bytes,
                stale_owners: config.faults.on(parley_session::faults::Fault::StaleOwners),
                tls: match (&c.tls_cert, &c.tls_key, &c.tls_ca) {
                    (Some(cert), Some(key), Some(ca)) => Some(
                        parley_cluster::link_tls::LinkTls::load(cert, key, ca)
                            .map_err(|e| err("cluster", &e))?,
                    ),
                    _ => None,
                },
            };
            let node = Node::start(settings, router.clone(), users.clone(), ready.clone())
                .await
                .map_err(|e| err(&format!("cluster (etcd {})", c.etcd.join(", ")), &e))?;
            Some(node)
        }
    };
    let c2s = &config.c2s;
    let s2s_routes = crate::s2s::routes(config, handles.to_vec(), &tls)?;
    // Server ports ask the connecting server for its certificate (XEP-0178).
    let s2s_tls = if config.s2s.enabled() {
        Some(
            tls.for_servers(config.s2s.ca_file.as_deref())
                .map_err(|e| err("s2s.ca_file", &e))?,
        )
    } else {
        None
    };
    // What the listeners take the certificate from: SIGHUP replaces it (reload.rs).
    let c2s_cell = TlsCell::new(tls.clone());
    let s2s_cell = s2s_tls.clone().map(TlsCell::new);
    let env = Arc::new(SessionEnv {
        node: node_id.clone(),
        config: SessionConfig {
            limits: Limits {
                max_stanza_bytes: c2s.max_stanza_bytes,
                max_depth: c2s.max_depth,
                max_attrs: c2s.max_attributes,
                max_namespace_declarations: c2s.max_namespace_declarations,
            },
            require_encryption: c2s.require_encryption,
            auth_timeout: Duration::from_secs(c2s.auth_timeout_s),
            max_auth_attempts: c2s.max_auth_attempts,
            resource_conflict: c2s.resource_conflict,
            send_queue_stanzas: c2s.send_queue_stanzas,
            send_queue_bytes: c2s.send_queue_bytes,
            scram_iterations: config.sasl.scram_iterations,
            mechanisms: config.sasl.mechanisms(),
            max_lifetime: (c2s.max_session_lifetime_s > 0)
                .then(|| Duration::from_secs(c2s.max_session_lifetime_s)),
            idle_timeout: (c2s.idle_timeout_s > 0).then(|| Duration::from_secs(c2s.idle_timeout_s)),
            max_sasl_attempts: c2s.max_sasl_attempts,
            max_stream_opens: c2s.max_stream_opens,
            sm: parley_session::SmConfig {
                enabled: c2s.stream_management,
                resume_timeout: Duration::from_secs(c2s.resume_timeout_s),
                max_resume_timeout: Duration::from_secs(c2s.max_resume_timeout_s),
                max_queue: c2s.sm_max_queue,
                max_queue_bytes: c2s.sm_max_queue_bytes,
                ack_every: c2s.sm_ack_every,
                ack_delay: Duration::from_millis(c2s.sm_ack_delay_ms),
                location: (!c2s.resume_location.is_empty()).then(|| c2s.resume_location.clone()),
                remember_ended: c2s.sm_remember_ended,
            },
            ping_interval: (c2s.ping_interval_s > 0)
                .then(|| Duration::from_secs(c2s.ping_interval_s)),
            ping_timeout: Duration::from_secs(c2s.ping_timeout_s),
            private_namespaces: config.quotas.private_namespaces,
            external_services: parley_session::ExternalServices {
                services: config
                    .external_services
                    .services
                    .iter()
                    .filter_map(|s| parley_proto::extdisco::Service::parse(s))
                    .collect(),
                turn_secret: config
                    .external_services
                    .turn_secret
                    .as_ref()
                    .map(|s| s.as_bytes().to_vec()),
                credential_ttl: Duration::from_secs(config.external_services.credential_ttl_s),
            },
            csi_max_held: c2s.csi_max_held,
            csi_max_held_bytes: c2s.csi_max_held_bytes,
            mam: parley_session::mam::MamSettings {
                default_page: config.mam.default_page,
                max_page: config.mam.max_page,
                max_prefs_jids: config.mam.max_prefs_jids,
                max_in_flight: config.mam.max_in_flight_per_session,
            },
            faults: config.faults.clone(),
            read_rate: parley_session::limits::ReadRate {
                bytes_per_s: config.limits.read_bytes_per_s,
                burst_bytes: config.limits.read_burst_bytes,
            },
            jwt: config
                .auth
                .jwt_secret
                .as_ref()
                .map(|s| parley_session::JwtSettings {
                    secret: s.as_bytes().to_vec(),
                    leeway_s: config.auth.jwt_leeway_s as i64,
                    audience: config.auth.jwt_audience.clone(),
                    issuer: config.auth.jwt_issuer.clone(),
                    max_lifetime_s: Some(config.auth.jwt_max_lifetime_s as i64),
                }),
        },
        router: router.clone(),
        users: users.clone(),
        archive: archive_writer(config, &storage),
        account_sessions: Default::default(),
        signup: Arc::new(parley_session::signup::SignupLimiter::new(
            config.register.settings(),
        )),
        storage,
        server_secret,
        resumptions: Arc::new(parley_session::Resumptions::new(
            &node_id,
            c2s.sm_remember_ended,
        )),
        tls_available: true,
        s2s: s2s_routes.clone(),
        started_ms: parley_proto::clock::now_ms(),
        server_caps: Default::default(),
        components: parley_session::ComponentSettings {
            secrets: component_secrets.into_iter().collect(),
            limits: Limits {
                max_stanza_bytes: config.component.max_stanza_bytes,
                max_depth: c2s.max_depth,
                max_attrs: c2s.max_attributes,
                max_namespace_declarations: c2s.max_namespace_declarations,
            },
        },
        auth_limits: Arc::new(parley_session::auth_limits::AuthLimits::new(
            auth_limit_config(&config.auth, Duration::from_secs(c2s.auth_timeout_s)),
        )),
        conn_limiter: parley_session::limits::ConnLimiter::new(crate::reload::conn_limits(config)),
        external_auth: match &config.auth.delegate_url {
            None => None,
            Some(url) => Some(std::sync::Arc::new(
                parley_http::delegate::DelegatedAuth::new(
                    url,
                    Duration::from_millis(config.auth.delegate_timeout_ms),
                )
                .map_err(|e| err("auth.delegate_url", &e))?,
            )),
        },
    });
    let reload = Arc::new(crate::reload::Reload::new(
        config,
        c2s_cell.clone(),
        s2s_cell.clone(),
        env.conn_limiter.clone(),
    ));
    if let Some(node) = &cluster {
        crate::resume::install(node, &env);
    }
    let rooms = crate::muc::start(
        config,
        &router,
        &env.storage,
        env.archive.clone(),
        handles.to_vec(),
    );
    if let Some(rooms) = &rooms {
        services.extend(crate::muc::services(rooms));
        if let Some(node) = &cluster {
            crate::muc::join_cluster(rooms, node);
        }
    }
    router.set_services(services);
    if let Some(routes) = &s2s_routes {
        routes.install(&env);
        router.set_foreign(routes.clone());
        if let Some(node) = &cluster {
            crate::s2s::join_cluster(routes, node, &router);
        }
    }
    let drain = DrainSwitch::new(
        env.conn_limiter.clone(),
        (!c2s.redirect_host.is_empty()).then(|| c2s.redirect_host.clone()),
        ready.clone(),
    );
    let drain_plan = DrainPlan {
        reason: CloseReason::Move {
            host: (!c2s.redirect_host.is_empty()).then(|| c2s.redirect_host.clone()),
            uri: config.http.redirect_ws_uri.clone(),
        },
        timeout: Duration::from_secs(config.cluster.as_ref().map_or(0, |c| c.drain_timeout_s)),
    };
    let mut bound = (Vec::new(), Vec::new(), Vec::new(), [Vec::new(), Vec::new()]);
    let listeners = c2s
        .listen
        .iter()
        .map(|a| (*a, ListenerKind::StartTls))
        .chain(c2s.direct_tls.iter().map(|a| (*a, ListenerKind::DirectTls)))
        .chain(
            config
                .component
                .listen
                .iter()
                .map(|a| (*a, ListenerKind::Component)),
        )
        .chain(config.s2s.listen.iter().map(|a| (*a, ListenerKind::S2s)))
        .chain(
            config
                .s2s
                .direct_tls
                .iter()
                .map(|a| (*a, ListenerKind::S2sDirectTls)),
        );
    for (addr, kind) in listeners {
        let what = match kind {
            ListenerKind::Component => "component",
            ListenerKind::S2s | ListenerKind::S2sDirectTls => "s2s",
            _ => "c2s",
        };
        let listener = bind_listener(addr).map_err(|e| err(what, &e))?;
        let local = listener.local_addr().map_err(|e| err(what, &e))?;
        info!(%local, ?kind, "listening");
        match kind {
            ListenerKind::StartTls => bound.0.push(local),
            ListenerKind::DirectTls => bound.1.push(local),
            ListenerKind::Component => bound.2.push(local),
            ListenerKind::S2s => bound.3[0].push(local),
            ListenerKind::S2sDirectTls => bound.3[1].push(local),
        }
        let listener_tls = match kind {
            ListenerKind::S2s | ListenerKind::S2sDirectTls => s2s_cell.clone(),
            _ => Some(c2s_cell.clone()),
        };
        // Client ports behind a balancer that speaks the PROXY protocol.
        let proxy = match kind {
            ListenerKind::StartTls | ListenerKind::DirectTls
                if !config.c2s.proxy_protocol_from.is_empty() =>
            {
                let trusted =
                    parley_http::proxy::TrustedProxies::parse(&config.c2s.proxy_protocol_from)
                        .map_err(|(i, e)| err(&format!("c2s.proxy_protocol_from[{i}]"), &e))?;
                Some(Arc::new(parley_transport::ProxyTrust {
                    trusted: Box::new(move |ip| trusted.contains(ip)),
                    timeout: Duration::from_secs(config.c2s.proxy_header_timeout_s),
                }))
            }
            _ => None,
        };
        actix_rt::spawn(serve_c2s(
            listener,
            kind,
            env.clone(),
            listener_tls,
            handles.clone(),
            proxy,
        ));
    }
    let mut web_state = None;
    let http = match config.http.listen {
        Some(addr) => {
            let state = std::sync::Arc::new(
                WebState::new(
                    env.clone(),
                    handles.clone(),
                    config.http.origins.clone(),
                    config.http.consider_secure,
                    config.http.public_url.clone(),
                )
                .with_trusted_proxies(
                    parley_http::proxy::TrustedProxies::parse(&config.http.trusted_proxies)
                        .unwrap_or_default(),
                )
                .with_proxy_protocol((!config.http.proxy_protocol_from.is_empty()).then(|| {
                    parley_http::proxy_header::WebProxy {
                        trusted: parley_http::proxy::TrustedProxies::parse(
                            &config.http.proxy_protocol_from,
                        )
                        .unwrap_or_default(),
                        timeout: Duration::from_secs(config.http.proxy_header_timeout_s),
                    }
                }))
                .with_bosh_limits(config.bosh_limits())
                .with_web_client(config.http.web_client.then(|| {
                    parley_http::web_client::WebClient {
                        domain: config.server.hosts.first().cloned().unwrap_or_default(),
                        assets: match (&config.http.converse_dist, &config.http.converse_url) {
                            (Some(dir), _) => parley_http::web_client::Assets::Dir(dir.clone()),
                            (None, Some(url)) => parley_http::web_client::Assets::Url(url.clone()),
                            (None, None) => parley_http::web_client::Assets::Bundled,
                        },
                    }
                }))
                .with_uploads(uploads.clone()),
            );
            web_state = Some(state.clone());
            reload.set_web(state.clone());
            if let Some(node) = &cluster {
                // BOSH without sticky balancing: SIDs name their node, and requests for
                // another node's sessions travel over the node link.
                state.bosh.set_cluster(node.clone());
                let forwarded = state.clone();
                node.set_bosh_handler(std::sync::Arc::new(move |body| {
                    let state = forwarded.clone();
                    Box::pin(async move { parley_http::bosh::forwarded(&state, body).await })
                }));
            }
            let (local, server) = web_server(state, addr)
                .map_err(|e| err(&format!("http listener {addr} ([http] listen)"), &e))?;
            info!(%local, "HTTP listener (WebSocket) listening");
            if config.http.web_client {
                match (&config.http.converse_dist, &config.http.converse_url) {
                    (Some(dir), _) => {
                        info!(dist = %dir.display(), "chat page at / (Converse.js from converse_dist)")
                    }
                    (None, Some(url)) => {
                        info!(%url, "chat page at / (Converse.js from converse_url; the browser needs to reach it)")
                    }
                    (None, None) => info!(
                        version = parley_http::web_client::BUNDLED_CONVERSE,
                        "chat page at / (the bundled Converse.js)"
                    ),
                }
            }
            if let Some(uploads) = &uploads {
                crate::upload::base_url_after_bind(uploads, local);
            }
            actix_rt::spawn(server);
            Some(local)
        }
        None => None,
    };
    let admin_state = AdminState {
        node: node_id.clone(),
        cluster: cluster.clone(),
        router: router.clone(),
        users: users.clone(),
        token: config.admin.token.clone(),
        local_token: match config.admin.listen {
            Some(_) => crate::local_admin::ensure(&config.server.data_dir),
            None => None,
        },
        ready: ready.clone(),
        storage: env.storage.clone(),
        web: web_state.clone(),
        policy: parley_http::admin_input::AdminPolicy {
            metrics_auth: config.admin.metrics_auth,
            metrics_elsewhere: config.admin.metrics_listen.is_some(),
            max_token_ttl_s: config.admin.max_token_ttl_s,
            invite_ttl_s: config.register.invite_ttl_s,
            scram_iterations: config.sasl.scram_iterations,
        },
        drain: Some(drain.clone()),
        rooms: rooms.clone(),
    };
    // XEP-0077 self-service ends sessions by the admin API's road, listener or not.
    let _ = env
        .account_sessions
        .set(Arc::new(parley_http::AdminSessions(admin_state.clone())));
    let admin = match config.admin.listen {
        Some(addr) => {
            let state = admin_state;
            if let Some(metrics_addr) = config.admin.metrics_listen {
                let (local, server) =
                    parley_http::admin_input::metrics_server(state.clone(), metrics_addr)
                        .map_err(|e| err(&format!("metrics listener {metrics_addr}"), &e))?;
                info!(%local, "metrics listening");
                actix_rt::spawn(server);
            }
            let (local, server) = admin_server(state, addr)
                .map_err(|e| err(&format!("admin endpoint {addr}"), &e))?;
            info!(%local, "admin endpoint listening");
            actix_rt::spawn(server);
            Some(local)
        }
        None => None,
    };
    ready.store(true, Ordering::Release);
    info!(hosts = ?config.server.hosts, workers = n, storage = %parley_storage::redact_password(&storage_url), "Parley started");
    Ok(Running {
        c2s: bound.0,
        direct_tls: bound.1,
        component: bound.2,
        s2s: bound.3,
        router,
        users,
        admin,
        http,
        ready,
        workers,
        cluster,
        drain,
        drain_plan,
        reload,
    })
}

/// The failed-authentication limits from `[auth]`, delays kept within the auth timeout.
/// The message archive's writer (XEP-0313), unless `[mam] enabled = false`.
fn archive_writer(
    config: &Config,
    storage: &Arc<dyn parley_storage::Storage>,
) -> Option<Arc<parley_session::archive::writer::ArchiveWriter>> {
    use parley_session::archive::writer::{ArchiveWriter, WriterSettings};
    let mam = &config.mam;
    mam.enabled.then(|| {
        ArchiveWriter::start(
            storage.clone(),
            WriterSettings {
                policy: parley_storage::ArchivePolicy {
                    default: mam.default_mode(),
                    max_items: mam.max_items,
                    max_bytes: mam.max_bytes,
                },
                queue_items: mam.queue_items,
                queue_bytes: mam.queue_bytes,
                batch: mam.batch,
                linger: Duration::from_millis(mam.batch_linger_ms),
                owner_cache_entries: mam.owner_cache_entries,
                owner_ttl: Duration::from_secs(mam.owner_cache_ttl_s),
                retention: (mam.retention_days > 0)
                    .then(|| Duration::from_secs(mam.retention_days * 86_400)),
            },
        )
    })
}

fn auth_limit_config(
    a: &crate::config::AuthConfig,
    auth_timeout: Duration,
) -> parley_session::auth_limits::AuthLimitConfig {
    parley_session::auth_limits::AuthLimitConfig {
        window: Duration::from_secs(a.failure_window_s),
        ip_delay_after: a.failure_ip_delay_after,
        ip_refuse_after: a.failure_ip_refuse_after,
        account_delay_after: a.failure_account_delay_after,
        account_refuse_after: a.failure_account_refuse_after,
        base_delay: Duration::from_millis(a.failure_delay_ms),
        max_delay: Duration::from_millis(a.failure_max_delay_ms),
        table_size: a.failure_table_size,
    }
    .within_auth_timeout(auth_timeout)
}

/// The `[quotas]` and `[users]` bounds of the user layer.
fn user_config(config: &Config) -> UserConfig {
    let (q, u) = (&config.quotas, &config.users);
    UserConfig {
        max_offline_bytes: q.offline_bytes,
        max_groups_per_item: q.roster_groups_per_item,
        max_roster_name_bytes: q.roster_name_bytes,
        max_roster_tombstones: q.roster_tombstones,
        max_blocklist_items: q.blocklist_items,
        max_pending_subscriptions: q.pending_subscriptions,
        max_subscription_request_bytes: q.subscription_request_bytes,
        max_directed_presence: q.directed_presence,
        mailbox_stanzas: u.mailbox_stanzas,
        mailbox_bytes: u.mailbox_bytes,
        absent_cache_entries: u.absent_cache_entries,
        absent_cache_ttl: std::time::Duration::from_millis(u.absent_cache_ttl_ms),
        max_existence_checks: u.existence_checks,
        pep: config.pep.limits(),
        push: config.push.limits(),
        ..UserConfig::default()
    }
}
