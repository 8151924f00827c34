mod common;
use common::{SimNet, SimServer, flat_world, link};
use nexus_client::{Controls, Encoding, SessionConfig};

#[test]
fn scratch() {
    let mut net = SimNet::new(SimServer::new(flat_world(), 20), 120.0);
    let mut c = SessionConfig::new("test", "w");
    c.encoding = if std::env::var("JSON").is_ok() {
        Encoding::Json
    } else {
        Encoding::Binary
    };
    let index = net.add_client(c, link(0.2, 0.02, 0.0), link(0.2, 0.02, 0.05), 12);
    let mut last = 0;
    net.run_until(12.0, |net, i| {
        let t = net.now;
        let phase = (t / 1.5) as u32 % 6;
        let yaw = (t * 0.7) as f32;
        net.clients[i].controls = Controls {
            movement: match phase {
                0 => [0.0, 1.0],
                1 => [1.0, 0.5],
                2 => [-0.7, -0.7],
                3 => [0.0, 1.0],
                4 => [0.0, 0.0],
                _ => [0.3, 1.0],
            },
            look: [yaw.sin(), 0.0, -yaw.cos()],
            jump: (t % 2.0) < 0.05,
            run: phase == 3,
        };
        let s = net.clients[i].session.stats();
        if s.corrections != last {
            last = s.corrections;
            let id = net.clients[i].id;
            let timing = net.clients[i].session.timing(t);
            println!(
                "t={t:.3} corr={} err={:.4} max={:.4} pending={} tick={} timing={:?} stats={:?}",
                s.corrections,
                s.prediction_error_last,
                s.correction_max,
                net.server.world.pending_input_count(id),
                net.server.world.tick(),
                timing,
                net.server.world.input_stats(id)
            );
        }
    });
    let _ = index;
}

#[test]
fn scratch_direct() {
    let RTT: f64 = std::env::var("RTT")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.2);
    let mut cfg = nexus_sim::WorldConfig::default();
    cfg.input.idle_after_ticks = 60;
    let mut net = SimNet::new(SimServer::new(common::flat_world_with(cfg), 20), 120.0);
    let mut c = SessionConfig::new("test", "w");
    c.encoding = if std::env::var("JSON").is_ok() {
        Encoding::Json
    } else {
        Encoding::Binary
    };
    c.redundant_inputs = 4;
    let ix = net.add_client(c, link(RTT, 0.02, 0.1), link(RTT, 0.02, 0.05), 31);
    net.clients[ix].lose_inputs = std::env::var("LOSE").is_ok();
    let mut reported = 0;
    net.run_until(12.0, |net, i| {
        let t = net.now;
        let phase = (t / 1.5) as u32 % 6;
        let yaw = (t * 0.7) as f32;
        net.clients[i].controls = Controls {
            movement: match phase {
                0 => [0.0, 1.0],
                1 => [1.0, 0.5],
                2 => [-0.7, -0.7],
                3 => [0.0, 1.0],
                4 => [0.0, 0.0],
                _ => [0.3, 1.0],
            },
            look: [yaw.sin(), 0.0, -yaw.cos()],
            jump: (t % 2.0) < 0.05,
            run: phase == 3,
        };
        let id = net.clients[i].id;
        if std::env::var("NEXUS_DEBUG").is_ok() && t < 0.5 {
            println!(
                "srv t={t:.3} tick={} char={:?} last={:?} stats={:?}",
                net.server.world.tick(),
                net.server.world.character_of(id).map(|c| c.position),
                net.server.world.last_processed_input(id),
                net.server.world.input_stats(id)
            );
        }
        let Some(last) = net.server.world.last_processed_input(id) else {
            return;
        };
        let server = net.server.world.character_of(id).unwrap();
        let Some(p) = net.clients[i].session.predictor() else {
            return;
        };
        if let Some(step) = p.history().iter().find(|s| s.input.seq == last) {
            let d: f32 = (0..3)
                .map(|k| (step.state.position[k] - server.position[k]).powi(2))
                .sum::<f32>()
                .sqrt();
            if d > 1e-5 && reported < 1 {
                reported += 1;
                println!(
                    "t={t:.3} seq={last} d={d} server_tick={} server={server:?} client={:?}",
                    net.server.world.tick(),
                    step.state
                );
                for inp in net.server.world.inputs_since(id, last.saturating_sub(4)) {
                    println!("  server input {:?}", inp);
                }
                for s in p
                    .history()
                    .iter()
                    .filter(|s| s.input.seq + 4 >= last && s.input.seq <= last + 1)
                {
                    println!("  client input {:?} -> {:?}", s.input, s.state.position);
                }
            }
        }
    });
}
