//! The emulated link with real sockets: UDP round trips (delay, loss, order), TCP through loss,
//! changing conditions, teardown. Needs root and /dev/net/tun; without them every test passes
//! after printing why it did not run.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nexus_netem::{Conditions, Netem, NetemConfig, NetemError};

/// Why the tests cannot run here, if they cannot.
fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun");
    }
    None
}

macro_rules! require_root {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

fn start(delay_ms: u64, loss: f64, seed: u64) -> Netem {
    let mut config = NetemConfig::new(nexus_netem::unique_namespace_name());
    config.delay_one_way = Duration::from_millis(delay_ms);
    config.loss = loss;
    config.seed = seed;
    Netem::start(config).expect("start netem")
}

/// Echoes every datagram back, from inside the namespace, until dropped.
struct UdpEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    fn start(netem: &Netem) -> UdpEcho {
        let socket = netem
            .enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
            .expect("enter namespace")
            .expect("bind in namespace");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = SocketAddr::new(netem.far_addr().into(), socket.local_addr().unwrap().port());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
            }
        });
        UdpEcho {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Round trips of `count` numbered datagrams sent `spacing` apart to an echo server; waits
/// `linger` after the last send for late answers. Returns each round trip time (`None`: lost)
/// and the numbers in the order the answers arrived.
fn udp_round_trips(
    server: SocketAddr,
    count: u32,
    spacing: Duration,
    linger: Duration,
) -> (Vec<Option<Duration>>, Vec<u32>) {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    socket.connect(server).unwrap();
    let sender = socket.try_clone().unwrap();
    let sent_at = std::thread::spawn(move || {
        let mut sent_at = Vec::new();
        for seq in 0..count {
            let mut packet = [0u8; 64];
            packet[..4].copy_from_slice(&seq.to_le_bytes());
            sent_at.push(Instant::now());
            sender.send(&packet).unwrap();
            std::thread::sleep(spacing);
        }
        sent_at
    });
    let deadline = Instant::now() + spacing * count + linger;
    let mut answers = Vec::new();
    let mut buf = [0u8; 64];
    while answers.len() < count as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = socket.recv(&mut buf) else { break };
        assert_eq!(n, 64);
        answers.push((
            u32::from_le_bytes(buf[..4].try_into().unwrap()),
            Instant::now(),
        ));
    }
    let sent_at = sent_at.join().unwrap();
    let mut rtts = vec![None; count as usize];
    for &(seq, at) in &answers {
        rtts[seq as usize] = Some(at - sent_at[seq as usize]);
    }
    (rtts, answers.iter().map(|&(seq, _)| seq).collect())
}

fn summary(rtts: &[Option<Duration>]) -> (Duration, Duration, Duration) {
    let mut got: Vec<Duration> = rtts.iter().flatten().copied().collect();
    got.sort();
    let mean = got.iter().sum::<Duration>() / got.len() as u32;
    (got[0], mean, got[got.len() - 1])
}

#[test]
fn udp_round_trip_is_twice_the_delay_and_nothing_is_lost() {
    require_root!();
    let netem = start(50, 0.0, 1);
    let echo = UdpEcho::start(&netem);
    let (rtts, _) = udp_round_trips(
        echo.addr,
        200,
        Duration::from_millis(1),
        Duration::from_millis(500),
    );
    let lost = rtts.iter().filter(|rtt| rtt.is_none()).count();
    let (min, mean, max) = summary(&rtts);
    eprintln!("delay 50 ms, loss 0: RTT min {min:?} mean {mean:?} max {max:?}, lost {lost}/200");
    assert_eq!(lost, 0);
    assert!(min >= Duration::from_millis(95), "min RTT {min:?}");
    assert!(max <= Duration::from_millis(130), "max RTT {max:?}");
    let stats = netem.stats();
    assert_eq!(stats.to_far.forwarded, 200, "{stats:?}");
    // (The last answer can reach us before its `forwarded` count is bumped.)
    assert_eq!(stats.to_near.received, 200, "{stats:?}");
}

#[test]
fn udp_loss_matches_the_probability() {
    require_root!();
    let netem = start(5, 0.2, 42);
    let echo = UdpEcho::start(&netem);
    let (rtts, _) = udp_round_trips(
        echo.addr,
        500,
        Duration::from_micros(500),
        Duration::from_millis(300),
    );
    let survived = rtts.iter().filter(|rtt| rtt.is_some()).count() as f64 / 500.0;
    let stats = netem.stats();
    eprintln!(
        "loss 0.2 each way: {survived:.3} of round trips survived (expected 0.64); {stats:?}"
    );
    assert!((0.45..=0.8).contains(&survived), "survived {survived}");
    assert!(stats.to_far.received >= 500, "{stats:?}");
    assert_eq!(
        stats.to_far.forwarded + stats.to_far.dropped_loss,
        stats.to_far.received
    );
    assert_eq!(stats.to_near.received, stats.to_far.forwarded);
}

#[test]
fn jitter_does_not_reorder() {
    require_root!();
    let mut config = NetemConfig::new(nexus_netem::unique_namespace_name());
    config.delay_one_way = Duration::from_millis(20);
    config.jitter = Duration::from_millis(10);
    let netem = Netem::start(config).unwrap();
    let echo = UdpEcho::start(&netem);
    let (rtts, order) = udp_round_trips(
        echo.addr,
        200,
        Duration::from_micros(200),
        Duration::from_millis(300),
    );
    let (min, mean, max) = summary(&rtts);
    eprintln!("delay 20 ± 10 ms: RTT min {min:?} mean {mean:?} max {max:?}");
    assert_eq!(order, (0..200).collect::<Vec<_>>());
    assert!(min >= Duration::from_millis(20) && max <= Duration::from_millis(90));
}

#[test]
fn tcp_carries_a_megabyte_each_way_through_loss() {
    require_root!();
    const SIZE: usize = 1 << 20;
    let pattern = |seed: u8| -> Vec<u8> {
        (0..SIZE)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
            .collect()
    };
    let netem = start(20, 0.05, 7);
    let listener = netem
        .enter(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let began = Instant::now();

    // Each side writes its megabyte on one thread while reading the other's on another.
    fn exchange(stream: TcpStream, send: Vec<u8>) -> Vec<u8> {
        let mut writer = stream.try_clone().unwrap();
        let writing = std::thread::spawn(move || {
            writer.write_all(&send).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut received = Vec::new();
        (&stream).read_to_end(&mut received).unwrap();
        writing.join().unwrap();
        received
    }
    let server = std::thread::spawn({
        let send = pattern(0x55);
        move || exchange(listener.accept().unwrap().0, send)
    });
    let client = TcpStream::connect((netem.far_addr(), port)).unwrap();
    let from_server = exchange(client, pattern(0xAA));
    let from_client = server.join().unwrap();
    let stats = netem.stats();
    eprintln!(
        "TCP 1 MiB each way, 20 ms one way, 5 % loss: {:?}; {stats:?}",
        began.elapsed()
    );
    assert!(from_server == pattern(0x55), "server's bytes differ");
    assert!(from_client == pattern(0xAA), "client's bytes differ");
    assert!(stats.to_far.dropped_loss > 0 && stats.to_near.dropped_loss > 0);
}

#[test]
fn set_conditions_changes_the_round_trip_at_run_time() {
    require_root!();
    let netem = start(10, 0.0, 3);
    let echo = UdpEcho::start(&netem);
    let measure = || {
        let (rtts, _) = udp_round_trips(
            echo.addr,
            20,
            Duration::from_millis(2),
            Duration::from_millis(300),
        );
        assert!(rtts.iter().all(Option::is_some));
        summary(&rtts)
    };
    let (min, _, max) = measure();
    eprintln!("delay 10 ms: RTT {min:?} to {max:?}");
    assert!(min >= Duration::from_millis(19) && max <= Duration::from_millis(40));
    netem
        .set_conditions(Conditions {
            delay_one_way: Duration::from_millis(40),
            ..netem.conditions()
        })
        .unwrap();
    let (min, _, max) = measure();
    eprintln!("delay 40 ms: RTT {min:?} to {max:?}");
    assert!(min >= Duration::from_millis(79) && max <= Duration::from_millis(110));
    assert!(
        netem
            .set_conditions(Conditions {
                loss: -0.1,
                ..netem.conditions()
            })
            .is_err()
    );
}

#[test]
fn teardown_removes_the_namespace_and_devices() {
    require_root!();
    let netem = start(1, 0.0, 0);
    let namespace = netem.namespace().to_owned();
    let near_device = ifindex(netem.near_device());
    let far = netem.far_addr();

    // A command inside the namespace sees the far address.
    let output = netem
        .command("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let inside = String::from_utf8_lossy(&output.stdout);
    assert!(inside.contains(&format!("inet {far}/32")), "{inside}");
    assert!(std::path::Path::new(&format!("/run/netns/{namespace}")).exists());
    assert!(link_exists(near_device));

    let stats = netem.shutdown().unwrap();
    eprintln!("after shutdown: {stats:?}");
    assert!(!std::path::Path::new(&format!("/run/netns/{namespace}")).exists());
    assert!(
        !link_exists(near_device),
        "device {near_device} still there"
    );
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&namespaces.stdout).contains(&namespace));

    // Plain drop does the same.
    let netem = start(1, 0.0, 0);
    let namespace = netem.namespace().to_owned();
    let near_device = ifindex(netem.near_device());
    drop(netem);
    assert!(!std::path::Path::new(&format!("/run/netns/{namespace}")).exists());
    assert!(!link_exists(near_device));
}

/// The interface index of a device in this namespace.
fn ifindex(device: &str) -> u32 {
    let path = format!("/sys/class/net/{device}/ifindex");
    std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether a device with this index exists in this namespace (names are reused by parallel
/// tests; indexes are not).
fn link_exists(ifindex: u32) -> bool {
    std::fs::read_dir("/sys/class/net").unwrap().any(|entry| {
        let path = entry.unwrap().path().join("ifindex");
        std::fs::read_to_string(path).is_ok_and(|index| index.trim() == ifindex.to_string())
    })
}

#[test]
fn bad_configurations_are_refused() {
    let mut config = NetemConfig::new(nexus_netem::unique_namespace_name());
    config.loss = 2.0;
    assert!(matches!(
        Netem::start(config),
        Err(NetemError::InvalidConfig(_))
    ));
    let config = NetemConfig::new("no/slashes");
    assert!(matches!(
        Netem::start(config),
        Err(NetemError::InvalidConfig(_))
    ));
    if skip_reason().is_some() {
        return;
    }
    let netem = start(1, 0.0, 0);
    let error = Netem::start(NetemConfig::new(netem.namespace())).unwrap_err();
    eprintln!("{error}");
    assert!(matches!(error, NetemError::NamespaceExists(_)));
}
