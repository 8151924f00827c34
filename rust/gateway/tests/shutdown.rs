//! Graceful shutdown: clients are told, every thread ends, the port is freed — also on drop.

mod common;

use common::*;
use nexus_gateway::HostEvent;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Threads of this process started by a gateway (they are all named `nexus-gw…`/`nexus-gateway`).
fn gateway_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("nexus-g"))
        .count()
}

// One test in this file: it counts the process's gateway threads, which a parallel test's
// gateway would disturb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_drop_close_clients_join_threads_and_free_the_port() {
    assert_eq!(gateway_threads(), 0);
    let gateway = start(dev_config());
    let addr = gateway.local_addr();
    let link = gateway.open_campaign("0").unwrap();
    let _other = gateway.open_campaign("1").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;
    // The gateway thread, 2 runtime workers, 2 campaign routers.
    assert_eq!(gateway_threads(), 5);

    // A plain thread (not the runtime's blocking pool, whose threads outlive their task).
    let stopping = std::thread::spawn(move || gateway.shutdown());
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Away);
    assert!(
        close.reason.starts_with("shutting_down"),
        "{}",
        close.reason
    );
    stopping.join().unwrap();

    // The port is free: nobody answers, and it can be bound again.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    drop(std::net::TcpListener::bind(addr).expect("the port is free again"));
    // The host side learns the campaign is gone; its calls are harmless no-ops.
    assert!(!link.is_open());
    link.publish_state(world_state(1, 1, 0.0), vec![]);
    assert!(
        link.poll()
            .iter()
            .all(|e| !matches!(e, HostEvent::Inputs { .. }))
    );
    drop(link);
    drop(_other);
    // Every thread the gateway started has ended (runtime workers, router threads).
    assert_eq!(gateway_threads(), 0);

    // Dropping the handle does the same.
    let gateway = start(dev_config());
    let addr = gateway.local_addr();
    let _link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    client.round_trip("", 1).await;
    let dropping = std::thread::spawn(move || drop(gateway));
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Away);
    dropping.join().unwrap();
    drop(std::net::TcpListener::bind(addr).expect("the port is free again"));
    assert_eq!(gateway_threads(), 0);
}
