//! The gateway: the HTTP API in front of the pipeline, as a library, so that its router can be
//! built and exercised in process (`tests/in_process.rs`) as well as served by the
//! `avatar-gateway` binary.
//!
//! [`router`] builds the API over an [`AppState`] (the NATS pipeline, the object store, the
//! caches and limits); [`starting_router`] answers while NATS is not reached yet.

mod answers;
mod cache;
pub mod config;
mod error;
mod files;
mod limits;
mod live;
mod openapi;
mod parse;
mod recordings;
mod renders;
mod responses;
mod routes;
mod service;
mod state;
mod stream;
mod ws;

pub use config::GatewayConfig;
pub use error::{ApiError, ErrorBody};
pub use openapi::openapi_json;
pub use routes::router;
pub use service::starting_router;
pub use state::{App, AppState};

#[cfg(test)]
mod tests {
    /// The committed `openapi.json` is what the code generates (`make openapi` refreshes it).
    #[test]
    fn committed_openapi_is_fresh() {
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
                .unwrap_or_default();
        assert!(
            committed == crate::openapi::openapi_json(),
            "services/gateway/openapi.json is stale: run `make openapi` and commit it"
        );
    }
}
