//! `avatar-gateway`: the HTTP API in front of the pipeline.
//!
//! `avatar-gateway --openapi` prints the OpenAPI document (committed as `openapi.json`).

mod api;
mod audio;
mod cache;
mod config;
mod error;

use std::process::ExitCode;

use avatar_core::config::Env;
use avatar_core::jetstream::Pipeline;
use avatar_core::shutdown::Shutdown;
use avatar_core::telemetry::Metrics;

use crate::api::AppState;
use crate::config::GatewayConfig;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--openapi") {
        print!("{}", api::openapi_json());
        return ExitCode::SUCCESS;
    }
    let shutdown = Shutdown::install();
    let config = match GatewayConfig::from_env(Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("avatar-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    avatar_core::telemetry::init_logging(&config.log_level);
    avatar_core::tls::install_crypto_provider();
    let store = match avatar_core::storage::open(&config.storage) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("avatar-gateway: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("avatar-gateway: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    // Open requests (a sync render waiting on NATS that is gone) get the shutdown grace
    // period to finish, no more.
    let body = async {
        let connecting = Pipeline::start(config.pipeline.clone(), "avatar-gateway");
        let Some(pipeline) = shutdown.unless_requested(connecting).await else {
            return Ok(());
        };
        let app = AppState::new(config, pipeline, store, Metrics::new("gateway"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%addr, "gateway listening");
        let stop = shutdown.clone();
        axum::serve(listener, app.router())
            .with_graceful_shutdown(async move { stop.requested().await })
            .await
    };
    if let Some(Err(e)) = shutdown.run(body).await {
        eprintln!("avatar-gateway: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    /// The committed `openapi.json` is what the code generates (`make openapi` refreshes it).
    #[test]
    fn committed_openapi_is_fresh() {
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
                .unwrap_or_default();
        assert!(
            committed == crate::api::openapi_json(),
            "services/gateway/openapi.json is stale: run `make openapi` and commit it"
        );
    }
}
