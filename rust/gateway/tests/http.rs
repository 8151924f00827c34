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
    assert_eq!(gateway.metrics().http_requests, 3);
}
