//! The gateway with its conformance echo on (`GatewayConfig::echo_path`), for the Autobahn cases
//! of `scripts/conformance`: the same listener, upgrade settings and close handling as the game
//! endpoint. Prints the echo's URL on its first line, then serves until stdin closes or it is
//! killed.
//!
//! `cargo run -p nexus-gateway --example ws_echo -- --help`

use std::io::Read;

use clap::Parser;
use nexus_gateway::{Gateway, GatewayConfig};

#[derive(Parser)]
#[command(about = "The gateway's WebSocket stack as an echo server, for conformance testing")]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: std::net::SocketAddr,
    /// Path of the echo endpoint.
    #[arg(long, default_value = "/echo")]
    path: String,
    /// Largest frame or message the stack takes, in bytes; the gateway's own cap when not given
    /// (1 MiB). Autobahn's section 9 sends messages of up to 16 MiB.
    #[arg(long)]
    hard_max_frame_bytes: Option<usize>,
}

fn main() {
    let args = Args::parse();
    let mut config = GatewayConfig::development();
    config.bind = args.bind;
    config.echo_path = Some(args.path.clone());
    if let Some(bytes) = args.hard_max_frame_bytes {
        config.session.hard_max_frame_bytes = bytes;
    }
    let gateway = match Gateway::start(config) {
        Ok(gateway) => gateway,
        Err(err) => {
            eprintln!("ws_echo: {err}");
            std::process::exit(1);
        }
    };
    println!("ws://{}{}", gateway.local_addr(), args.path);
    // Ends when whoever started it closes our stdin (or kills us).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    gateway.shutdown();
}
