//! Prints the native `movement_trace` as JSON (`{"ticks", "seed", "positions"}`), for the
//! WebAssembly parity test: `cargo run -p nexus-wasm --example movement_trace -- TICKS SEED`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse = |index: usize, default: u32| match args.get(index) {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| format!("expected a whole number, got {text:?}")),
    };
    let (ticks, seed) = match (parse(0, 3000), parse(1, 7)) {
        (Ok(ticks), Ok(seed)) => (ticks, seed),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("usage: movement_trace [TICKS] [SEED]: {error}");
            return ExitCode::from(2);
        }
    };
    let positions = nexus_wasm::movement_trace::movement_trace(ticks, seed);
    println!(
        "{}",
        serde_json::json!({"ticks": ticks, "seed": seed, "positions": positions})
    );
    ExitCode::SUCCESS
}
