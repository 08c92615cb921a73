//! Writes the shipped sample (`data/incoming/*.csv`) from `dms::sample`.
//! Usage: `cargo run --example gen_sample [DIR]` (default `data/incoming`).

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/incoming".into());
    std::fs::create_dir_all(&dir)?;
    for (name, text) in dms::sample::shipped_sample() {
        let path = std::path::Path::new(&dir).join(&name);
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
