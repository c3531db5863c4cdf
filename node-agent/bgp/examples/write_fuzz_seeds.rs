//! Writes the sample messages as the fuzz target's starting corpus, one
//! file per message and session kind (the selector octet the target reads
//! first): `cargo run -p lastmile-bgp --example write_fuzz_seeds -- <dir>`.
//! `fuzz/run.sh` does this before each campaign.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let directory: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("corpus/decode_message"));
    std::fs::create_dir_all(&directory)?;
    let mut written = 0;
    for (index, sample) in lastmile_bgp::wire::samples::sample_messages()
        .into_iter()
        .enumerate()
    {
        for selector in 0u8..4 {
            let mut input = vec![selector];
            input.extend_from_slice(&sample);
            std::fs::write(
                directory.join(format!("sample-{index:02}-{selector}")),
                input,
            )?;
            written += 1;
        }
    }
    println!("wrote {written} seeds to {}", directory.display());
    Ok(())
}
