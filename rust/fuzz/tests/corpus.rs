//! Replays every input libFuzzer kept for each target (`corpus/TARGET/`), and every crash it ever
//! reported that was then fixed (`regressions/TARGET/`), on the stable toolchain: what fuzzing
//! found once stays found.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_input_runs_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut empty = Vec::new();
    for (name, target) in nexus_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        if corpus.is_empty() {
            empty.push(*name);
        }
        let regressions = inputs(&root.join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            // A panic names the input; rerun it with `scripts/fuzz --reproduce TARGET FILE`.
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
        }
        println!(
            "{name}: {} corpus inputs, {} regressions",
            corpus.len(),
            regressions.len()
        );
    }
    assert!(
        empty.is_empty(),
        "no corpus for {empty:?}: run scripts/fuzz"
    );
}

#[test]
fn the_seeds_reach_past_the_first_checks() {
    // Seeds that every decoder refused at once would make fuzzing shallow: the real frames the
    // seed writer makes must decode.
    let join = nexus_fuzz::seeds::client_texts();
    assert!(
        join.iter()
            .all(|t| nexus_protocol::decode_client_text(t).is_ok())
    );
    let binary = nexus_fuzz::seeds::client_binaries();
    assert!(
        binary
            .iter()
            .all(|b| nexus_protocol::decode_client_binary(b).is_ok())
    );
    let stream = nexus_fuzz::seeds::server_streams();
    let mut decoder = nexus_protocol::StateDecoder::default();
    let mut states = 0;
    for frame in nexus_fuzz::frames(&stream[0]) {
        if let nexus_client::Frame::Binary(bytes) = frame {
            decoder.decode(&bytes).expect("a real state decodes");
            states += 1;
        }
    }
    assert!(states >= 10, "{states} states in the seed stream");
    let image = nexus_fuzz::seeds::campaign_image();
    let record = nexus_store::load_campaign_image(&image, nexus_fuzz::CAMPAIGN)
        .unwrap()
        .expect("the seed campaign loads");
    assert!(record.objects.len() >= 7);
    let token = nexus_fuzz::seeds::tokens();
    assert!(
        nexus_gateway::auth::verify_token_with_any(
            &nexus_fuzz::TOKEN_SECRETS,
            std::str::from_utf8(&token[0]).unwrap(),
            1_900_000_000
        )
        .is_ok()
    );
}
