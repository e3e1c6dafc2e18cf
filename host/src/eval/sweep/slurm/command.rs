//! Running the Slurm client commands, with errors that name the command and say what went wrong.

use anyhow::{bail, Context};
use std::io::ErrorKind;
use std::process::Command;

/// The standard output of `program args`; an error when it cannot start or exits non-zero.
pub fn output<S: AsRef<str>>(program: &str, args: &[S]) -> anyhow::Result<String> {
    let line = std::iter::once(program)
        .chain(args.iter().map(AsRef::as_ref))
        .collect::<Vec<_>>()
        .join(" ");
    let out = match Command::new(program)
        .args(args.iter().map(AsRef::as_ref))
        .output()
    {
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "{program} not found: install Slurm's client commands (Debian: slurm-wlm) or run \
             without --executor slurm"
        ),
        other => other.with_context(|| format!("cannot run `{line}`"))?,
    };
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
