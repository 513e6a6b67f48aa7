//! TLS for every outgoing connection (Kubernetes API, S3, NATS with `tls://`).
//!
//! rustls needs one process-wide crypto provider. It picks one by itself only when exactly one
//! is compiled in; a dependency that adds a second (aws-lc-rs beside ring) makes the first
//! TLS handshake panic ("Could not automatically determine the process-level
//! CryptoProvider"). Every binary installs ring explicitly at start-up, so a change in the
//! dependency tree cannot turn into a crash on a real cluster.

/// Installs ring as the process's rustls provider; harmless when one is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_is_installed_and_a_second_call_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
