//! `avatar-gateway`: the HTTP API in front of the pipeline (the library `avatar_gateway`).
//!
//! `avatar-gateway --openapi` prints the OpenAPI document (committed as `openapi.json`).

use std::future::IntoFuture;
use std::process::ExitCode;

use avatar_runtime::config::Env;
use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::shutdown::Shutdown;
use avatar_runtime::telemetry::Metrics;

use avatar_gateway::{AppState, GatewayConfig, openapi_json, router, starting_router};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--openapi") {
        print!("{}", openapi_json());
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
    avatar_runtime::telemetry::init_logging(&config.log_level);
    avatar_runtime::tls::install_crypto_provider();
    let store = match avatar_runtime::storage::open(&config.storage) {
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
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // Until NATS is reached, a small app answers on the same socket: alive (/livez), not
    // ready (/readyz says why), everything else 503 with Retry-After.
    let (startup_listener, listener) = match split_listener(listener) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("avatar-gateway: cannot share the listening socket: {e}");
            return ExitCode::from(1);
        }
    };
    let (connected, connected_signal) = tokio::sync::oneshot::channel::<()>();
    let startup = tokio::spawn(
        axum::serve(startup_listener, starting_router())
            .with_graceful_shutdown(async move {
                let _ = connected_signal.await;
            })
            .into_future(),
    );
    tracing::info!(%addr, "gateway listening (connecting to NATS)");
    // Open requests (a sync render waiting on NATS that is gone) get the shutdown grace
    // period to finish, no more.
    let body = async {
        let connecting = Pipeline::start(config.pipeline.clone(), "avatar-gateway");
        let Some(pipeline) = shutdown.unless_requested(connecting).await else {
            return Ok(());
        };
        let app = AppState::new(config, pipeline, store, Metrics::new("gateway")).await;
        let _ = connected.send(());
        let _ = startup.await;
        tracing::info!(%addr, "gateway serving the API");
        let stop = shutdown.clone();
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async move { stop.requested().await })
            .await
    };
    if let Some(Err(e)) = shutdown.run(body).await {
        eprintln!("avatar-gateway: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Two listeners on one socket: the start-up app's, then the API's.
fn split_listener(
    listener: tokio::net::TcpListener,
) -> std::io::Result<(tokio::net::TcpListener, tokio::net::TcpListener)> {
    let first = listener.into_std()?;
    let second = first.try_clone()?;
    Ok((
        tokio::net::TcpListener::from_std(first)?,
        tokio::net::TcpListener::from_std(second)?,
    ))
}
