//! The one way dms builds an HTTP client: TLS through rustls with the `ring` provider (no C
//! crypto library to build), installed as the process default before the first client.

/// A reqwest client builder with the `ring` provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Err means a provider is installed already (by an earlier call): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
