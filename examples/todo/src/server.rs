//! Wiring: builds the shared state from the `Config`, registers static and demo routes, and
//! serves on an already bound listener (so tests and scripts can use port 0).

use std::net::TcpListener;

use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};

use crate::assets::{self, AssetDirs};
use crate::config::{BadHeraldUrl, Config};
use crate::page::{BrowserPusher, Frontend};
use crate::routes::{self, State};
use crate::signing::Credentials;
use crate::store::{Store, StoreError};
use crate::trigger::{Target, Trigger};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or created.
    #[error("opening the database: {0}")]
    Store(#[from] StoreError),
    /// `--herald-url` is not usable.
    #[error(transparent)]
    HeraldUrl(#[from] BadHeraldUrl),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// `--frontend` does not hold the original files.
    #[error("--frontend {0}: no javascripts/application.js in it or in its public/ folder")]
    Frontend(String),
}

/// The shared state and static-file locations for `config`.
pub fn build(config: &Config, store: Store) -> Result<(State, AssetDirs), StartError> {
    let original = match &config.frontend {
        Some(dir) => Some(
            assets::original_public_dir(dir)
                .ok_or_else(|| StartError::Frontend(dir.display().to_string()))?,
        ),
        None => None,
    };
    let trigger = Trigger::new(Target {
        base_url: config.herald_url.clone(),
        app_id: config.app_id.clone(),
        credentials: Credentials {
            key: config.app_key.clone(),
            secret: config.app_secret.clone(),
        },
        api: config.trigger_api,
    })?;
    let state = State {
        store,
        trigger,
        frontend: if original.is_some() {
            Frontend::Original
        } else {
            Frontend::Ours
        },
        pusher: BrowserPusher {
            key: config.app_key.clone(),
            ws: config.ws_endpoint()?,
        },
    };
    let dirs = AssetDirs {
        node_modules: config.node_modules.clone(),
        original,
    };
    Ok((state, dirs))
}

/// Registers every route; shared by `run` and the tests.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    state: web::Data<State>,
    dirs: web::Data<AssetDirs>,
) {
    assets::configure(cfg, &dirs);
    cfg.app_data(state).app_data(dirs);
    routes::configure(cfg);
}

/// Serves until the process is told to stop (actix handles SIGINT/SIGTERM).
pub async fn run(listener: TcpListener, state: State, dirs: AssetDirs) -> std::io::Result<()> {
    let state = web::Data::new(state);
    let dirs = web::Data::new(dirs);
    HttpServer::new(move || {
        App::new()
            .wrap(Logger::new("%r %s %Dms"))
            .configure(|cfg| configure(cfg, state.clone(), dirs.clone()))
    })
    .workers(2)
    .shutdown_timeout(5)
    .listen(listener)?
    .run()
    .await
}
