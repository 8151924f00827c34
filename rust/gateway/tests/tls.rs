//! TLS on the gateway's port: `wss://` and `https://` with a self-signed certificate made here,
//! trusted by the test clients alone; unusable certificates are clear errors.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use nexus_gateway::{Gateway, GatewayError};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A fresh self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem, DER).
fn self_signed(name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("a certificate");
    let dir = std::env::temp_dir().join(format!("nexus-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, certified.cert.der().clone())
}

/// A client configuration trusting `cert` only.
fn client_config(cert: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn tls_config(cert: PathBuf, key: PathBuf) -> nexus_gateway::GatewayConfig {
    let mut config = dev_config();
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    config
}

#[tokio::test]
async fn wss_clients_join_and_get_state_and_https_health_works() {
    let (cert, key, der) = self_signed("wss");
    let gateway = start(tls_config(cert, key));
    assert!(gateway.is_tls());
    let url = gateway.url();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let trust = client_config(der);
    let request = url.as_str().into_client_request().unwrap();
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            Some(Connector::Rustls(trust.clone())),
        ),
    )
    .await
    .expect("connect in time")
    .expect("a wss:// connection");
    let mut client = Client {
        ws,
        subprotocol: None,
    };
    let link = gateway.open_campaign("alpha").unwrap();
    let client_id = join_fake(&mut client, &link, "alpha", "Ada").await;
    link.publish_state(world_state(1, 3, 0.0), vec![(client_id, 1)]);
    let state = client.next_of("physics:world_state:v1:stream").await;
    assert_eq!(state["payload"]["tick"], 1, "{state}");

    // https:// on the same port.
    let tcp = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(trust);
    let server_name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(server_name, tcp).await.expect("TLS");
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tls.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .expect("a UTF-8 answer");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"status\":\"ok\""), "{response}");
}

#[tokio::test]
async fn clients_that_do_not_trust_the_certificate_or_speak_plain_http_get_nothing() {
    let (cert, key, _) = self_signed("untrusted");
    let gateway = start(tls_config(cert, key));
    // Trusting another certificate: the handshake fails on the client's side.
    let (_, _, other) = self_signed("other");
    let request = gateway.url().into_client_request().unwrap();
    let refused = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        true,
        Some(Connector::Rustls(client_config(other))),
    )
    .await;
    assert!(refused.is_err());
    // Plain HTTP on the TLS port: no HTTP answer, and the server carries on.
    let mut tcp = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    assert_eq!(gateway.metrics().task_panics, 0);
    assert_eq!(gateway.metrics().connections_open, 0);
}

#[test]
fn unusable_certificates_and_keys_are_clear_errors() {
    let (cert, key, _) = self_signed("bad");
    let dir = cert.parent().unwrap().to_path_buf();
    let missing = dir.join("missing.pem");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").unwrap();
    let (_, other_key, _) = self_signed("bad-other");

    for (cert, key, needle) in [
        (missing.clone(), key.clone(), "missing.pem"),
        (garbage.clone(), key.clone(), "garbage.pem"),
        (cert.clone(), missing.clone(), "missing.pem"),
        (cert.clone(), garbage.clone(), "garbage.pem"),
        // The key of another certificate.
        (cert.clone(), other_key.clone(), "key"),
    ] {
        let err = Gateway::start(tls_config(cert.clone(), key.clone())).unwrap_err();
        assert!(
            matches!(err, GatewayError::Tls(_)),
            "{cert:?} {key:?}: {err}"
        );
        assert!(err.to_string().contains(needle), "{err}");
    }
    let mut half = dev_config();
    half.tls_cert = Some(cert);
    assert!(matches!(
        Gateway::start(half).unwrap_err(),
        GatewayError::Config(_)
    ));
}
