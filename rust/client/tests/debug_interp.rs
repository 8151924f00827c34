mod common;
use common::{SimNet, SimServer, flat_world, link};
use nexus_client::{Controls, Encoding, SessionConfig};

#[test]
fn interp() {
    let mut net = SimNet::new(SimServer::new(flat_world(), 20), 120.0);
    let mut a = SessionConfig::new("test", "observer");
    a.encoding = Encoding::Binary;
    let mut b = SessionConfig::new("test", "walker");
    b.encoding = Encoding::Binary;
    let o = net.add_client(a, link(0.1, 0.02, 0.0), link(0.1, 0.02, 0.05), 41);
    let w = net.add_client(b, link(0.1, 0.02, 0.0), link(0.1, 0.02, 0.05), 141);
    net.run_until(2.0, |_, _| {});
    let wa = net.clients[w].session.avatar_id().unwrap();
    net.clients[w].controls = Controls {
        movement: [0.0, 1.0],
        look: [0.0, 0.0, -1.0],
        ..Controls::default()
    };
    let mut n = 0;
    net.run_until(4.0, |net, i| {
        if i != o {
            return;
        }
        n += 1;
        if n % 24 == 0 {
            let s = &net.clients[i].session;
            let wid = net.clients[w].id;
            println!(
                "t={:.2} server_tick={} walker timing={:?} pending={} stats={:?} wstats={:?}",
                net.now,
                net.server.world.tick(),
                net.clients[w].session.timing(net.now),
                net.server.world.pending_input_count(wid),
                net.server.world.input_stats(wid),
                net.clients[w].session.stats().inputs_rejected
            );
            let _ = (s, wa);
        }
    });
}
