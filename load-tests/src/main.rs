//! Load generators and benchmarks. Scenarios arrive with the load-test issue.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("no scenario is implemented yet")
}
