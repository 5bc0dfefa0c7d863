//! Runs the `replay --projections` benchmark of `rollcall-bench` from this crate, whose
//! dev-dependencies include the three projections.
//!
//! `cargo run --release -p rollcall-projection --example replay_projections -- [events]`

#[path = "../../rollcall-bench/src/projections.rs"]
mod projections;

fn main() -> anyhow::Result<()> {
    let mut args = projections::ProjectionsArgs::default();
    if let Some(events) = std::env::args().nth(1) {
        args.events = events.parse()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(projections::run(&args))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
