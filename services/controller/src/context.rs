//! What every reconciliation shares: the clients and settings ([`Context`]) and the errors it
//! can end with ([`Error`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::spill::SpillError;
use avatar_runtime::submit::SubmitError;
use avatar_runtime::telemetry::Metrics;
use avatar_runtime::voices::VoiceRegistry;
use kube::runtime::events::{Recorder, Reporter};
use object_store::ObjectStore;

use crate::config::Settings;

/// The controller's name in events and field managers.
pub const CONTROLLER_NAME: &str = "avatar-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The render records (the KV bucket) did not answer.
    #[error("the render store is unavailable: {0}")]
    Records(#[source] async_nats::jetstream::kv::EntryError),
    /// A completed record whose result cannot be found.
    #[error("the render store is unavailable: render {0} is completed without a result")]
    MissingResult(String),
    /// The object store (results) did not answer, or held something unreadable.
    #[error("the object store is unavailable: {0}")]
    Result(#[from] SpillError),
    #[error("the object store is unavailable: {0}")]
    Store(#[from] object_store::Error),
}

/// Everything a reconciliation needs.
pub struct Context {
    pub client: kube::Client,
    pub pipeline: Pipeline,
    pub voices: VoiceRegistry,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub(crate) failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        pipeline: Pipeline,
        voices: VoiceRegistry,
        store: Arc<dyn ObjectStore>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: settings.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pipeline,
            voices,
            store,
            settings,
            metrics,
            failures: Mutex::default(),
        }
    }
}
