//! Wiring: builds the shared [`State`] once, starts the background tasks (webhook worker,
//! channel upkeep), serves HTTP and WebSocket on an already-bound listener, and on shutdown stops
//! accepting, lets every session close with 4200, and waits for them with a deadline.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpServer};
use tokio::sync::mpsc;

use crate::adapter::LocalAdapter;
use crate::app::Apps;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::state::State;
use crate::webhook::{self, WebhookEvent};
use crate::{http_api, ws};

/// How often channel upkeep runs (throttled counts, cache expiry).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Serves until `shutdown` fires, then drains. `listener` is already bound (port 0 in tests).
pub async fn run(listener: TcpListener, config: Config, shutdown: Shutdown) -> std::io::Result<()> {
    let (webhook_tx, webhook_rx) = mpsc::channel(config.webhooks.queue);
    let state = Arc::new(State {
        apps: Apps::new(&config, webhook_tx),
        adapter: LocalAdapter::shared(),
        server: config.server.clone(),
        shutdown: shutdown.clone(),
    });
    let drain_for = config.server.shutdown_timeout;
    let worker_token = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(webhook::worker::run(
        webhook_rx,
        config.webhooks.clone(),
        worker_token.clone(),
        drain_for,
    ));
    let sweeper = tokio::spawn(sweep(state.clone()));

    let data = web::Data::from(state.clone());
    let mut http = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .configure(ws::configure)
            .configure(http_api::configure)
            .default_service(web::to(http_api::not_found))
    })
    .disable_signals()
    .shutdown_timeout(drain_for.as_secs().max(1));
    if config.server.workers > 0 {
        http = http.workers(config.server.workers);
    }
    let server = http.listen(listener)?.run();
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
    let _ = worker.await;
    match serving.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Channel upkeep for every app, with the resulting `subscription_count` webhooks.
async fn sweep(state: Arc<State>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        for app in state.apps.iter() {
            for (channel, n) in app.channels.sweep() {
                app.hooks.emit(WebhookEvent::SubscriptionCount {
                    channel: channel.to_string(),
                    subscription_count: n,
                });
            }
        }
    }
}
