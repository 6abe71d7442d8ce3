//! Wiring: builds the shared [`State`] once, starts the background tasks (webhook worker,
//! channel upkeep), serves HTTP and WebSocket on an already-bound listener (over TLS when it is
//! configured) and the metrics and health checks on another ([`Listeners`]), and on shutdown
//! stops accepting, lets every session close with 4200, and waits for them with a deadline. The
//! metrics listener stops last, so `/ready` answers 503 there for as long as connections drain.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol};
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::dev::AppConfig;
use actix_web::{middleware, web};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::adapter::Adapter;
use crate::app::Apps;
use crate::config::Config;
use crate::connection::{Backlog, CloseCounts, Socket};
use crate::fanout::FanOut;
use crate::http_api::{self, BodyLimits};
use crate::metrics::{Metrics, Sources};
use crate::shutdown::Shutdown;
use crate::state::State;
use crate::tls::{self, Tls};
use crate::webhook;
use crate::{ops, ws};

/// How long a request head (a WebSocket handshake too) may take to arrive from the moment the
/// connection is accepted; then actix answers 408 and closes, so a client that trickles its
/// headers, or never finishes them, holds a connection for this long at most.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often channel upkeep runs (throttled counts, cache expiry).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The sockets herald serves on, bound before [`run`] (port 0 in tests).
#[derive(Debug)]
pub struct Listeners {
    /// WebSocket connections, the REST API, `/up` and `/ready`.
    pub main: TcpListener,
    /// The main listener's TLS (`wss://`, `https://`); `None` serves it in plain text.
    pub tls: Option<Tls>,
    /// `/metrics`, `/up` and `/ready`; `None` when the metrics listener is off.
    pub metrics: Option<TcpListener>,
    /// The debug console; `None` when it is off (the default).
    pub console: Option<TcpListener>,
}

impl Listeners {
    /// Loads the TLS certificate, if one is configured, then binds the main listener,
    /// unless `metrics.enabled` is false the metrics listener, and if `console.enabled` the
    /// console's, at their configured addresses;
    /// non-blocking, as [`run`] wants them. A bad certificate or key file is an `InvalidInput`
    /// error naming the file, before anything is bound.
    pub fn bind(config: &Config) -> std::io::Result<Listeners> {
        let tls = tls::load(&config.server)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let main = bind(SocketAddr::new(config.server.host, config.server.port))?;
        let m = &config.metrics;
        let metrics = match m.enabled {
            true => Some(bind(SocketAddr::new(m.host, m.port))?),
            false => None,
        };
        let c = &config.console;
        let console = match c.enabled {
            true => Some(bind(SocketAddr::new(c.host, c.port))?),
            false => None,
        };
        Ok(Listeners {
            main,
            tls,
            metrics,
            console,
        })
    }

    /// The main listener's URL scheme: `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves until `shutdown` fires, then drains. The listeners are already bound.
pub async fn run(listeners: Listeners, config: Config, shutdown: Shutdown) -> std::io::Result<()> {
    run_announced(listeners, config, shutdown, || {}).await
}

/// [`run`], calling `serving` once everything that can fail at start-up has succeeded (on a
/// cluster node: Redis answered and the node registered), right before serving.
pub async fn run_announced(
    listeners: Listeners,
    config: Config,
    shutdown: Shutdown,
    serving: impl FnOnce(),
) -> std::io::Result<()> {
    let adapter = Arc::new(adapter(&config).await?);
    let (webhook_tx, webhook_rx) = mpsc::channel(config.webhooks.queue);
    let webhook_queue = webhook_tx.downgrade();
    // On a cluster node the apps' events go through the cluster's queue (Redis) first.
    let (emitted_tx, emitted_rx) = mpsc::channel(config.webhooks.queue);
    let clustered = config.cluster.redis_url.is_some();
    let emitted = if clustered {
        emitted_tx
    } else {
        webhook_tx.clone()
    };
    let backlog = Backlog::new(
        config.server.fanout_backlog,
        config.server.slow_consumer_timeout,
    );
    let fan_out = FanOut::start(fanout_threads(&config), backlog.clone())?;
    let state = Arc::new(State {
        apps: Apps::new(&config, emitted, &fan_out),
        adapter,
        server: config.server.clone(),
        backlog,
        shutdown: shutdown.clone(),
        closes: CloseCounts::default(),
    });
    let fan_out_load = fan_out.load();
    // The apps hold the fan-out lanes; the threads end when the state is dropped.
    drop(fan_out);
    let drain_for = config.server.shutdown_timeout;
    let worker_token = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(webhook::worker::run(
        webhook_rx,
        config.webhooks.clone(),
        worker_token.clone(),
        drain_for,
    ));
    let sweeper = tokio::spawn(sweep(state.clone()));
    let stall_watch = tokio::spawn(state.backlog.clone().watch_stalls());
    let cluster = tokio::spawn(cluster(state.clone(), emitted_rx, webhook_tx));

    let sources = Sources {
        state: state.clone(),
        fan_out: fan_out_load,
        webhook_queue,
        port: listeners.main.local_addr()?.port(),
    };
    let metrics = listeners
        .metrics
        .map(|listener| serve_metrics(sources, listener))
        .transpose()?;
    let console = listeners
        .console
        .map(|listener| serve_console(state.clone(), &config, listener))
        .transpose()?;
    let server = http_server(state.clone(), listeners.main, listeners.tls, &config)?;
    serving();
    let handle = server.handle();
    let serving = tokio::spawn(server);

    shutdown.triggered().await;
    tracing::info!("shutting down: closing connections with 4200");
    handle.pause().await;
    if !shutdown.drain(drain_for).await {
        tracing::warn!("some connections did not close within {drain_for:?}");
    }
    cluster.abort();
    #[cfg(feature = "redis")]
    if let Some(cluster) = state.adapter.cluster() {
        cluster.retire().await;
    }
    worker_token.cancel();
    handle.stop(true).await;
    sweeper.abort();
    stall_watch.abort();
    let _ = worker.await;
    let served = serving.await;
    if let Some(console) = console {
        console.stop().await;
    }
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    match served {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// The adapter the configuration asks for: a cluster node's when `cluster.redis_url` is set
/// (connected and registered before anything is served: herald does not start half-clustered).
async fn adapter(config: &Config) -> std::io::Result<Adapter> {
    match &config.cluster.redis_url {
        None => Ok(Adapter::local()),
        #[cfg(feature = "redis")]
        Some(_) => crate::adapter::clustered::Clustered::connect(&config.cluster, &config.webhooks)
            .await
            .map(Adapter::clustered)
            .map_err(std::io::Error::other),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(std::io::Error::other(
            "cluster.redis_url: this build has no cluster support (feature `redis`)",
        )),
    }
}

/// A cluster node's background work (nothing on a single process): `emitted` brings the apps'
/// webhook events, `worker` takes the ones this node delivers.
async fn cluster(
    state: Arc<State>,
    emitted: mpsc::Receiver<webhook::Queued>,
    worker: mpsc::Sender<webhook::Queued>,
) {
    #[cfg(feature = "redis")]
    if let Some(cluster) = state.adapter.cluster() {
        let webhooks = crate::adapter::clustered::Webhooks { emitted, worker };
        cluster.run(&state.apps, &state.shutdown, webhooks).await;
    }
    #[cfg(not(feature = "redis"))]
    drop((state, emitted, worker));
}

/// Builds the HTTP server (not yet polled) on the main listener, in plain text or, with `tls`,
/// after each connection's TLS handshake. Kept out of `run` so that future stays `Send`: the app
/// factory is `!Send` and must not live across an `.await`.
fn http_server(
    state: Arc<State>,
    listener: TcpListener,
    tls: Option<Tls>,
    config: &Config,
) -> std::io::Result<actix_server::Server> {
    let addr = listener.local_addr()?;
    let body = BodyLimits::new(config);
    let sessions = ws::fallback::Sessions::new();
    let mut builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout.as_secs().max(1));
    if config.server.workers > 0 {
        builder = builder.workers(config.server.workers);
    }
    let builder = match tls {
        None => builder.listen("herald", listener, move || {
            fn_service(|tcp: TcpStream| async move {
                let peer = accepted(&tcp);
                Ok((tcp, Protocol::Http1, peer))
            })
            .and_then(http_service(state.clone(), body, addr, sessions.clone()))
        })?,
        Some(tls) => builder.listen("herald", listener, move || {
            let tls = tls.clone();
            fn_service(move |tcp: TcpStream| {
                let tls = tls.clone();
                async move {
                    let peer = accepted(&tcp);
                    let stream = tls.accept(tcp).await.map_err(DispatchError::Io)?;
                    Ok((stream, Protocol::Http1, peer))
                }
            })
            .and_then(http_service(state.clone(), body, addr, sessions.clone()))
        })?,
    };
    Ok(builder.run())
}

/// A connection just accepted on the main listener: `TCP_NODELAY` on, and the peer's address.
fn accepted(tcp: &TcpStream) -> Option<SocketAddr> {
    let _ = tcp.set_nodelay(true);
    tcp.peer_addr().ok()
}

/// HTTP/1 on one connection `T` (TCP, or TLS over TCP): actix-web serves the REST API and the
/// HTTP fallback transports ([`ws::fallback`], whose open `sessions` every worker shares), and
/// every upgrade request goes to [`ws::upgrade`] with the connection itself.
fn http_service<T>(
    state: Arc<State>,
    body: BodyLimits,
    addr: SocketAddr,
    sessions: Arc<ws::fallback::Sessions>,
) -> impl ServiceFactory<
    (T, Protocol, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + Into<Socket> + 'static,
{
    let api = actix_web::App::new()
        .app_data(web::Data::from(state.clone()))
        .app_data(body)
        .wrap(middleware::from_fn(http_api::hold_unread))
        .wrap(middleware::from_fn(http_api::count_calls))
        .configure(http_api::configure)
        .configure(|cfg| ws::fallback::configure(cfg, &sessions))
        .configure(ops::health)
        .default_service(web::to(http_api::not_found))
        .into_factory()
        .map_err(|err| err.error_response());
    let upgrade = fn_service(move |(req, framed)| {
        let state = state.clone();
        async move {
            ws::upgrade::<T>(state, req, framed).await;
            Ok::<_, std::convert::Infallible>(())
        }
    });
    HttpService::build()
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        // A client that closes its connection is gone: a response still running for it (an
        // HTTP fallback stream or poll) ends, rather than until it next fails to write.
        .h1_allow_half_closed(false)
        .local_addr(addr)
        .upgrade(upgrade)
        .finish(map_config(api, |_| AppConfig::default()))
}

/// A server of its own listener (metrics, console), running.
struct SideServer {
    handle: actix_server::ServerHandle,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl SideServer {
    /// Stops it, not gracefully: scrapers keep idle connections open and consoles hold their
    /// live logs open, which would hold a graceful stop for its whole timeout, and nothing is
    /// lost by cutting them short.
    async fn stop(self) {
        self.handle.stop(false).await;
        if let Ok(Err(e)) = self.serving.await {
            tracing::warn!(error = %e, "side listener (metrics or console)");
        }
    }
}

/// Starts the metrics server: `/metrics`, `/up` and `/ready` on their own listener, with a
/// worker thread of their own, so that scrapes and health checks are answered while the main
/// listener is paused or busy.
fn serve_metrics(sources: Sources, listener: TcpListener) -> std::io::Result<SideServer> {
    let state = web::Data::from(sources.state.clone());
    let metrics = web::Data::new(Metrics::new(sources));
    serve_side(listener, move |cfg| {
        cfg.app_data(state.clone())
            .app_data(metrics.clone())
            .configure(ops::configure);
    })
}

/// Starts the debug console on its own listener, with a worker thread of its own (its live
/// logs are long requests that must not take the main listener's workers).
fn serve_console(
    state: Arc<State>,
    config: &Config,
    listener: TcpListener,
) -> std::io::Result<SideServer> {
    let c = &config.console;
    // `Config::validate` refuses an enabled console without a token.
    let token = c.token.as_deref().unwrap_or_default();
    let gate = Arc::new(crate::console::login::Gate::new(token, c.session_ttl));
    let state = web::Data::from(state);
    serve_side(listener, move |cfg| {
        cfg.app_data(state.clone());
        crate::console::configure(cfg, gate.clone());
    })
}

/// Serves `routes` (and 404 for the rest) on a listener of its own with one worker thread.
fn serve_side(
    listener: TcpListener,
    routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> std::io::Result<SideServer> {
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .configure(routes.clone())
            .default_service(web::to(http_api::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(SideServer {
        handle: server.handle(),
        serving: tokio::spawn(server),
    })
}

/// Channel upkeep for every app (throttled counts, reported to webhooks by the registries).
async fn sweep(state: Arc<State>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        for app in state.apps.iter() {
            app.channels.sweep();
        }
    }
}

/// Fan-out threads: as configured, or one per core.
fn fanout_threads(config: &Config) -> usize {
    match config.server.fanout_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_send_so_it_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let config = Config::load(Some(PORT_0), &|_| None).unwrap();
        let listeners = Listeners::bind(&config).unwrap();
        let fut = run(listeners, config, Shutdown::new());
        assert_send(&fut);
    }

    const PORT_0: &str = "[server]\nport = 0\n[metrics]\nport = 0\n";

    #[test]
    fn listeners_bind_as_configured() {
        let config = Config::load(Some(PORT_0), &|_| None).unwrap();
        let listeners = Listeners::bind(&config).unwrap();
        let main = listeners.main.local_addr().unwrap();
        let metrics = listeners.metrics.unwrap().local_addr().unwrap();
        assert!(main.ip().is_loopback() && metrics.ip().is_loopback());
        assert!(main.port() != 0 && metrics.port() != 0 && main.port() != metrics.port());

        let off = format!("{PORT_0}enabled = false\n");
        let config = Config::load(Some(&off), &|_| None).unwrap();
        assert!(Listeners::bind(&config).unwrap().metrics.is_none());
    }

    #[test]
    fn a_port_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let file = format!("[server]\nport = 0\n[metrics]\nport = {port}\n");
        let config = Config::load(Some(&file), &|_| None).unwrap();
        let err = Listeners::bind(&config).unwrap_err().to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
