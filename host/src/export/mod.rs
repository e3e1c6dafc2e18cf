//! Export to a model file, inspection, signing keys and verification.
use clap::Args;

#[derive(Args)]
pub struct ExportArgs {}
#[derive(Args)]
pub struct InspectArgs {}
#[derive(Args)]
pub struct KeygenArgs {}
#[derive(Args)]
pub struct VerifyArgs {}

pub fn run_export(_a: ExportArgs) -> anyhow::Result<()> {
    anyhow::bail!("export is under construction")
}
pub fn run_inspect(_a: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("inspect is under construction")
}
pub fn run_keygen(_a: KeygenArgs) -> anyhow::Result<()> {
    anyhow::bail!("keygen is under construction")
}
pub fn run_verify(_a: VerifyArgs) -> anyhow::Result<()> {
    anyhow::bail!("verify is under construction")
}
