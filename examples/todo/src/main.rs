//! `herald-todo`: parse flags, open the database, bind, print the URL, serve.

use std::net::TcpListener;

use anyhow::Context;
use clap::Parser;
use todo_example::config::Config;
use todo_example::server;
use todo_example::store::Store;
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    let store = Store::open(&config.db)
        .with_context(|| format!("opening database {}", config.db.display()))?;
    let (state, dirs) = server::build(&config, store)?;
    let listener =
        TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        db = %config.db.display(),
        herald = %config.herald_url,
        frontend = ?state.frontend,
        "herald-todo starting"
    );
    println!("herald-todo listening on http://{addr}");
    server::run(listener, state, dirs).await?;
    Ok(())
}
