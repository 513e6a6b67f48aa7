//! `avatar-controller`: reconciles AvatarRender resources. Run one replica (the chart does):
//! reconciliations are idempotent, but two replicas would publish duplicate events.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use avatar_controller::{Context, ControllerConfig};
use avatar_runtime::config::Env;
use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::shutdown::Shutdown;
use avatar_runtime::telemetry::Metrics;
use avatar_runtime::voices::VoiceRegistry;

#[tokio::main]
async fn main() -> ExitCode {
    let shutdown = Shutdown::install();
    let config = match ControllerConfig::from_env(Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("avatar-controller: {e}");
            return ExitCode::from(2);
        }
    };
    avatar_runtime::telemetry::init_logging(&config.worker.log_level);
    avatar_runtime::tls::install_crypto_provider();
    let store = match avatar_runtime::storage::open(&config.worker.storage) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("avatar-controller: {e}");
            return ExitCode::from(1);
        }
    };
    // Everything from here may wait on the API server or NATS: a stop ends it within the
    // shutdown grace period whatever their state.
    let body = async {
        let connecting = async {
            loop {
                match kube::Client::try_default().await {
                    Ok(client) => break client,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach the Kubernetes API yet; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        };
        let Some(client) = shutdown.unless_requested(connecting).await else {
            return;
        };
        let metrics = Metrics::new("controller");
        // Metrics and health answer from the start (health "starting" until NATS is reached).
        let connected: Arc<OnceLock<Pipeline>> = Arc::default();
        let health_state = connected.clone();
        match avatar_runtime::telemetry::serve_worker_endpoints(
            config.worker.metrics_addr,
            metrics.clone(),
            move || Pipeline::health_of(health_state.get()),
        )
        .await
        {
            Ok(addr) => tracing::info!(%addr, "metrics and health endpoints up"),
            Err(e) => tracing::error!(error = %e, "cannot serve metrics"),
        }
        let connecting = Pipeline::start(config.worker.pipeline, "avatar-controller");
        let Some(pipeline) = shutdown.unless_requested(connecting).await else {
            return;
        };
        let _ = connected.set(pipeline.clone());
        let voices = VoiceRegistry::start(pipeline.clone()).await;
        let ctx = Arc::new(Context::new(
            client,
            pipeline,
            voices,
            store,
            config.settings,
            metrics,
        ));
        tracing::info!("controller starting");
        avatar_controller::controller::run(ctx, &shutdown).await;
    };
    shutdown.run(body).await;
    ExitCode::SUCCESS
}
