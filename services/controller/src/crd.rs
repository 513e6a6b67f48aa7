//! The `AvatarRender` custom resource: a render requested with `kubectl apply`.
//!
//! The spec carries the API's limits as schema validation, so the API server refuses a bad
//! spec before the controller sees it; what a schema cannot say (text that is only
//! whitespace, a voice no worker has) ends the resource `Failed` with the field named. The
//! status holds the outcome's summary; the cues and eye events stay in the object store, at
//! `status.resultUrl`, not in etcd.

use avatar_domain::VisemeSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_speed() -> f64 {
    avatar_domain::DEFAULT_SPEED
}

/// What to render: the HTTP API's request, in Kubernetes field names.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "avatar.pipeline.dev",
    version = "v1alpha1",
    kind = "AvatarRender",
    plural = "avatarrenders",
    shortname = "avr",
    namespaced,
    status = "AvatarRenderStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Duration","type":"integer","description":"Audio length in milliseconds","jsonPath":".status.durationMs"}"#,
    printcolumn = r#"{"name":"Cached","type":"boolean","jsonPath":".status.cached"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AvatarRenderSpec {
    /// The text to speak: 1 to 5000 characters. The schema bounds the text as written; the
    /// controller, like the HTTP API, also refuses text that is empty or too long once
    /// whitespace at its ends is trimmed.
    #[schemars(length(min = 1, max = avatar_domain::MAX_TEXT_CHARS))]
    pub text: String,
    /// A voice id, as the gateway's `/v1/voices` lists them; default: the pipeline's default
    /// voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = avatar_domain::MAX_VOICE_ID_CHARS),
        regex(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
    )]
    pub voice_id: Option<String>,
    /// Speech rate, 0.5 to 2.0.
    #[serde(default = "default_speed")]
    #[schemars(range(min = avatar_domain::MIN_SPEED, max = avatar_domain::MAX_SPEED))]
    pub speed: f64,
    /// The mouth-shape vocabulary of the cues.
    #[serde(default)]
    pub viseme_set: VisemeSet,
}

/// Where a render is.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Pending,
    Rendering,
    Completed,
    Failed,
}

/// The phase's own schema, without the `null` that `Option` would add to its enum: API servers
/// before 1.23 refuse a CRD with `null` in an enum (kubectl's validation too). An unset phase
/// is simply absent.
fn phase_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    <Phase as JsonSchema>::json_schema(generator)
}

impl Phase {
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed)
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvatarRenderStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "phase_schema")]
    pub phase: Option<Phase>,
    /// The render's id (its cache key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mouth_cue_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eye_event_count: Option<u32>,
    /// How many word marks the result has (when each written word of `spec.text` is heard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_count: Option<u32>,
    /// How many sentence marks the result has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence_count: Option<u32>,
    /// The full result (mouth cues, eye events, word and sentence marks located in
    /// `spec.text`), as the HTTP API returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    /// Whether the render came from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    /// What happened, for people (the failure's reason, with the field at fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
