//! The avatar pipeline's runtime, shared by its binaries (the gateway, the stage workers, the
//! controller): the JetStream layout ([`jetstream`]), render records ([`record`]) and the jobs
//! that carry a render between stages ([`job`]), submission ([`submit`]), waiting
//! ([`watcher`]), the stage-worker loop ([`worker`]), the voices the workers announce
//! ([`voices`]), configuration ([`config`]), storage ([`storage`], [`spill`]), telemetry
//! ([`telemetry`]), shutdown ([`shutdown`]) and TLS ([`tls`]). What a render *is* lives in
//! `avatar-domain`, which the stage libraries use without any of this.

pub mod config;
pub mod jetstream;
pub mod job;
pub mod live;
pub mod record;
pub mod shutdown;
pub mod spill;
pub mod storage;
pub mod submit;
pub mod telemetry;
pub mod tls;
pub mod voices;
pub mod watcher;
pub mod worker;
