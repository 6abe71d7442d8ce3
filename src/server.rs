//! Wiring: builds the shared [`State`] once, starts the background tasks (webhook worker,
//! channel upkeep), serves HTTP and WebSocket on an already-bound listener, and on shutdown stops
//! accepting, lets every session close with 4200, and waits for them with a deadline.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{middleware, web};
use tokio::sync::mpsc;

use crate::adapter::LocalAdapter;
use crate::app::Apps;
use crate::config::Config;
use crate::connection::Backlog;
use crate::fanout::FanOut;
use crate::http_api::{self, BodyLimits};
use crate::shutdown::Shutdown;
use crate::state::State;
use crate::webhook;
use crate::ws;

/// How long a request head (a WebSocket handshake too) may take to arrive from the moment the
/// connection is accepted; then actix answers 408 and closes, so a client that trickles its
/// headers, or never finishes them, holds a connection for this long at most.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often channel upkeep runs (throttled counts, cache expiry).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Serves until `shutdown` fires, then drains. `listener` is already bound (port 0 in tests).
pub async fn run(listener: TcpListener, config: Config, shutdown: Shutdown) -> std::io::Result<()> {
    let (webhook_tx, webhook_rx) = mpsc::channel(config.webhooks.queue);
    let backlog = Backlog::new(
        config.server.fanout_backlog,
        config.server.slow_consumer_timeout,
    );
    let fan_out = FanOut::start(fanout_threads(&config), backlog.clone())?;
    let state = Arc::new(State {
        apps: Apps::new(&config, webhook_tx, &fan_out),
        adapter: LocalAdapter::shared(),
        server: config.server.clone(),
        backlog,
        shutdown: shutdown.clone(),
    });
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

    let server = http_server(state.clone(), listener, &config)?;
    let handle = server.handle();
    let serving = tokio::spawn(server);

    shutdown.triggered().await;
    tracing::info!("shutting down: closing connections with 4200");
    handle.pause().await;
    if !shutdown.drain(drain_for).await {
        tracing::warn!("some connections did not close within {drain_for:?}");
    }
    worker_token.cancel();
    handle.stop(true).await;
    sweeper.abort();
    stall_watch.abort();
    let _ = worker.await;
    match serving.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Builds the HTTP server (not yet polled): actix-web serves the REST API, and every HTTP/1
/// upgrade request goes to [`ws::upgrade`] with the raw connection. Kept out of `run` so that
/// future stays `Send`: the app factory is `!Send` and must not live across an `.await`.
fn http_server(
    state: Arc<State>,
    listener: TcpListener,
    config: &Config,
) -> std::io::Result<actix_server::Server> {
    let addr = listener.local_addr()?;
    let body = BodyLimits::new(config);
    let mut builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout.as_secs().max(1));
    if config.server.workers > 0 {
        builder = builder.workers(config.server.workers);
    }
    let builder = builder.listen("herald", listener, move || {
        let api = actix_web::App::new()
            .app_data(web::Data::from(state.clone()))
            .app_data(body)
            .wrap(middleware::from_fn(http_api::hold_unread))
            .configure(http_api::configure)
            .default_service(web::to(http_api::not_found))
            .into_factory()
            .map_err(|err| err.error_response());
        let ws_state = state.clone();
        let upgrade = fn_service(move |(req, framed)| {
            let state = ws_state.clone();
            async move {
                ws::upgrade(state, req, framed).await;
                Ok::<_, std::convert::Infallible>(())
            }
        });
        HttpService::build()
            .client_request_timeout(REQUEST_HEAD_TIMEOUT)
            .tcp_nodelay(true)
            .local_addr(addr)
            .upgrade(upgrade)
            .finish(map_config(api, |_| AppConfig::default()))
            .tcp()
    })?;
    Ok(builder.run())
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
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config::load(None, &|_| None).unwrap();
        let fut = run(listener, config, Shutdown::new());
        assert_send(&fut);
    }
}
