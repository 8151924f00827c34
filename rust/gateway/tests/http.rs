//! `/metrics`, `/health` and other plain HTTP requests on the WebSocket port.

mod common;

use common::*;

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("alpha").unwrap();
    let mut client = connect(&gateway).await;
    let client_id = join_fake(&mut client, &link, "alpha", "Ada").await;
    link.report_tick_time(std::time::Duration::from_micros(1500));
    link.publish_state(world_state(1, 3, 0.0), vec![(client_id, 1)]);
    client.next_of("physics:world_state:v1:stream").await;
    wait_metrics(&gateway, "the tick time", |m| m.campaigns[0].ticks == 1).await;

    let response = http_get(&gateway, "/metrics").await;
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    for needle in [
        "# TYPE nexus_gateway_connections gauge",
        "\nnexus_gateway_connections 1\n",
        "nexus_gateway_campaign_clients{campaign=\"alpha\"} 1\n",
        "nexus_gateway_tick_seconds{campaign=\"alpha\"} 0.0015\n",
        "# TYPE nexus_gateway_bytes_out_total counter",
        "# TYPE nexus_gateway_messages_out_total counter",
        "# TYPE nexus_gateway_state_updates_dropped_total counter",
        "# TYPE nexus_gateway_inputs_rejected_total counter",
        "nexus_gateway_connections_rejected_total{reason=\"too_many_connections\"} 0\n",
        // The histograms: tick time per campaign, and the state stream's age, encoding time and
        // message sizes (one state sent so far; the welcome was an event).
        "# TYPE nexus_gateway_campaign_tick_seconds histogram",
        "nexus_gateway_campaign_tick_seconds_count{campaign=\"alpha\"} 1\n",
        "# TYPE nexus_gateway_state_age_seconds histogram",
        "\nnexus_gateway_state_age_seconds_count 1\n",
        "nexus_gateway_state_age_seconds_bucket{le=\"+Inf\"} 1\n",
        "\nnexus_gateway_state_encode_duration_seconds_count 1\n",
        "# TYPE nexus_gateway_message_out_bytes histogram",
        "nexus_gateway_message_out_bytes_count{kind=\"state\"} 1\n",
        "nexus_gateway_message_out_bytes_bucket{kind=\"state\",le=\"1.048576e+06\"} 1\n",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }
    let bytes_out: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("nexus_gateway_bytes_out_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes_out > 0);
    let event_messages: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("nexus_gateway_message_out_bytes_count{kind=\"event\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(event_messages >= 1, "the welcome at least");
    // Every series the shipped Grafana dashboard queries is served.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../monitoring/grafana-dashboard.json"
    ))
    .expect("monitoring/grafana-dashboard.json");
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut queried: Vec<&str> = dashboard
        .match_indices("nexus_gateway_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    queried.sort();
    queried.dedup();
    assert!(queried.len() > 10, "{queried:?}");
    for name in queried {
        assert!(
            body.contains(&format!("\n# TYPE {name} ")) || body.contains(&format!("\n{name}")),
            "the dashboard queries {name}, which /metrics does not serve"
        );
    }
    // Every sample line is `name{labels} value` with a number.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit_once(' ').expect("a value").1;
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[tokio::test]
async fn health_reports_status_mode_and_campaigns() {
    let gateway = start(dev_config());
    let _link = gateway.open_campaign("alpha").unwrap();
    let response = http_get(&gateway, "/health").await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let health: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["auth_mode"], "development");
    assert_eq!(health["campaigns"][0]["id"], "alpha");
}

async fn health(gateway: &nexus_gateway::GatewayHandle) -> serde_json::Value {
    let response = http_get(gateway, "/health").await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "still serving: {head}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn failing_saves_show_as_degraded_health_until_a_save_succeeds() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("alpha").unwrap();
    let _quiet = gateway.open_campaign("beta").unwrap();
    let failing = nexus_gateway::PersistenceHealth {
        lease: None,
        saves: 3,
        failures: 2,
        last_saved_tick: Some(120),
        last_error: Some("database or disk is full".into()),
    };
    link.report_persistence(failing);
    wait_metrics(&gateway, "the failure report", |m| {
        m.campaigns.iter().any(|c| c.persistence.is_some())
    })
    .await;
    let report = health(&gateway).await;
    assert_eq!(report["status"], "degraded", "{report}");
    let problem = report["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("\"alpha\"") && problem.contains("disk is full"),
        "{problem}"
    );
    let alpha = &report["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "alpha")
        .unwrap()["persistence"];
    assert_eq!(alpha["failures"], 2);
    assert_eq!(alpha["last_saved_tick"], 120);
    let metrics = http_get(&gateway, "/metrics").await;
    assert!(
        metrics.contains("nexus_gateway_campaign_save_failing{campaign=\"alpha\"} 1\n")
            && metrics.contains("nexus_gateway_campaign_save_failing{campaign=\"beta\"} 0\n"),
        "{metrics}"
    );

    link.report_persistence(nexus_gateway::PersistenceHealth {
        lease: None,
        saves: 4,
        failures: 2,
        last_saved_tick: Some(180),
        last_error: None,
    });
    wait_metrics(&gateway, "the recovery report", |m| {
        m.campaigns
            .iter()
            .any(|c| c.persistence.as_ref().is_some_and(|p| p.saves == 4))
    })
    .await;
    let report = health(&gateway).await;
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn other_requests_get_clear_http_errors() {
    let gateway = start(dev_config());
    assert!(
        http_get(&gateway, "/nope")
            .await
            .starts_with("HTTP/1.1 404")
    );
    let plain_ws = http_get(&gateway, "/ws").await;
    assert!(plain_ws.starts_with("HTTP/1.1 426"), "{plain_ws}");
    // Garbage instead of HTTP.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    stream
        .write_all(b"\x16\x03\x01 not http\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    // The server still works.
    let mut client = connect(&gateway).await;
    client.round_trip("", 1).await;
    // hyper answers an unparsable request itself; it is counted once its connection ends, which
    // may be a moment after the client read the answer.
    wait_metrics(&gateway, "three plain HTTP requests", |m| {
        m.http_requests == 3
    })
    .await;
}

#[tokio::test]
async fn extra_routes_are_served_on_the_same_port() {
    use nexus_gateway::axum::{Router, routing::get};
    let mut config = dev_config();
    config.extra_routes = Some(Router::new().route("/api/hello", get(|| async { "hello\n" })));
    let gateway = start(config);
    let response = http_get(&gateway, "/api/hello").await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello\n"), "{response}");
    // The gateway's own routes are still there, and the WebSocket still works.
    assert!(
        http_get(&gateway, "/health")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut client = connect(&gateway).await;
    client.round_trip("", 1).await;
}

#[test]
fn extra_routes_that_overlap_the_gateways_are_a_configuration_error() {
    use nexus_gateway::axum::{Router, routing::get};
    for path in ["/health", "/metrics", "/ws"] {
        let mut config = dev_config();
        config.extra_routes = Some(Router::new().route(path, get(|| async { "mine" })));
        let err = nexus_gateway::Gateway::start(config).unwrap_err();
        assert!(
            matches!(err, nexus_gateway::GatewayError::Config(_)),
            "{path}: {err}"
        );
        assert!(err.to_string().contains("extra_routes"), "{err}");
    }
}

#[tokio::test]
async fn huge_request_heads_get_431_and_one_request_is_served_per_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gateway = start(dev_config());
    let mut stream = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");

    // Two pipelined requests: one answer (Connection: close), then the socket closes.
    let mut stream = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    let two = "GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n";
    stream.write_all(two.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.matches("HTTP/1.1 200").count(), 1, "{response}");
    assert!(response.contains("Connection: close"), "{response}");
}

/// A web root with a page, a script, a gzipped sibling and a subdirectory, fresh per test.
fn web_root(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("nexus-web-root-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>demo</title>\n",
    )
    .unwrap();
    std::fs::write(root.join("assets/app.js"), "console.log('app');\n").unwrap();
    root
}

#[tokio::test]
async fn the_web_client_is_served_beside_the_websocket() {
    let root = web_root("served");
    // A secret outside the root, which no path may reach.
    let outside = root.with_extension("secret");
    std::fs::write(&outside, "secret\n").unwrap();
    let mut config = dev_config();
    config.web_root = Some(root.clone());
    let gateway = start(config);

    let index = http_get(&gateway, "/").await;
    assert!(index.starts_with("HTTP/1.1 200 OK"), "{index}");
    assert!(index.contains("<title>demo</title>"), "{index}");
    let head = index.split_once("\r\n\r\n").unwrap().0.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");

    let script = http_get(&gateway, "/assets/app.js").await;
    assert!(script.starts_with("HTTP/1.1 200 OK"), "{script}");
    assert!(
        script
            .to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "{script}"
    );
    assert!(script.ends_with("console.log('app');\n"), "{script}");

    for path in [
        "/missing.js",
        "/assets/../../nexus-web-root-secret",
        &format!("/../{}", outside.file_name().unwrap().to_string_lossy()),
        "/%2e%2e/etc/passwd",
    ] {
        let response = http_get(&gateway, path).await;
        assert!(
            response.starts_with("HTTP/1.1 404") || response.starts_with("HTTP/1.1 400"),
            "{path}: {response}"
        );
        assert!(!response.contains("secret"), "{path}: {response}");
    }
    // The gateway's own routes win over files of the same name.
    std::fs::write(root.join("health"), "a file\n").unwrap();
    let health = http_get(&gateway, "/health").await;
    assert!(health.contains("\"status\""), "{health}");
    let mut client = connect(&gateway).await;
    client.round_trip("", 1).await;
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&outside);
}

#[test]
fn a_web_root_without_an_index_is_a_configuration_error() {
    let root = web_root("empty");
    std::fs::remove_file(root.join("index.html")).unwrap();
    for candidate in [root.clone(), root.join("does-not-exist")] {
        let mut config = dev_config();
        config.web_root = Some(candidate.clone());
        let err = nexus_gateway::Gateway::start(config).unwrap_err();
        assert!(
            matches!(err, nexus_gateway::GatewayError::Config(_)),
            "{}: {err}",
            candidate.display()
        );
        assert!(err.to_string().contains("scripts/build-web"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
