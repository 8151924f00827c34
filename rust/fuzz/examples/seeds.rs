//! Writes the fuzz targets' seeds (real frames, tokens and a campaign file) into a corpus
//! directory: `cargo run -p nexus-fuzz --example seeds -- rust/fuzz/corpus` (scripts/fuzz does).

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: seeds CORPUS_DIR");
        std::process::exit(2);
    };
    match nexus_fuzz::seeds::write(std::path::Path::new(&dir)) {
        Ok(n) => println!(
            "{n} seeds written under {}",
            std::path::Path::new(&dir).display()
        ),
        Err(e) => {
            eprintln!("seeds: {e}");
            std::process::exit(1);
        }
    }
}
