//! Completed renders kept in the gateway's memory, in front of the KV bucket. A completed
//! record never changes (its id is a content hash), so serving it from memory is always
//! right; the cache is bounded by bytes and entries live no longer than the KV's TTL.

use std::time::Duration;

use bytes::Bytes;
use moka::sync::Cache;

pub struct ResponseCache {
    inner: Cache<String, Bytes>,
}

impl ResponseCache {
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, value: &Bytes| {
                    (key.len() + value.len()).try_into().unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The response body (`cached: true`) of a completed render.
    pub fn get(&self, render_id: &str) -> Option<Bytes> {
        self.inner.get(render_id)
    }

    pub fn insert(&self, render_id: String, body: Bytes) {
        self.inner.insert(render_id, body);
    }
}
