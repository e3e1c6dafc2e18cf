//! The local executor: every task on this machine, one after another, skipping what is done.
//! sweep.json and results.csv are rewritten after every cell, so a report can be drawn while the
//! sweep goes on; the report is written at the end.

use super::cell::{self, Setup};
use super::collect;
use super::data::Splits;
use super::grid::{Cell, Grid};
use crate::eval::sweep_results::{write_results, SWEEP_JSON};
use crate::train::{pretrained, DeviceChoice};
use std::path::Path;

pub(super) fn run(
    grid_path: &Path,
    grid: &Grid,
    cells: &[Cell],
    out: &Path,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    let folder = grid_path.parent().unwrap_or(Path::new("."));
    let splits = Splits::prepare(&grid.data, folder, out)?;
    let pretrained = pretrained::default_path()?;
    let setup = Setup {
        grid,
        device: device.resolve()?,
        pretrained: &pretrained,
    };
    let mut results = collect::empty_results(grid_path, grid, &splits);
    let total = cells.len() * grid.sweep.seeds.len();
    let mut done = 0;
    for c in cells {
        let data = splits.write_variant(c, out)?;
        let mut runs = Vec::new();
        for &seed in &grid.sweep.seeds {
            done += 1;
            let run_dir = cell::run_dir(out, &c.name, seed);
            if !cell::is_done(&run_dir) {
                eprintln!("[{done}/{total}] {} seed {seed}: training", c.name);
                cell::train_and_evaluate(&setup, c, seed, &data, &run_dir)?;
            } else {
                eprintln!(
                    "[{done}/{total}] {} seed {seed}: done before, skipped",
                    c.name
                );
            }
            runs.push(collect::seed_run(seed, run_dir)?);
        }
        results.cells.push(collect::cell_result(grid, c, runs)?);
        // Written after every cell, so a report can be drawn while the sweep goes on.
        write_results(out, &results)?;
    }
    let html = collect::write_report(out)?;
    eprintln!(
        "written {} and {}",
        out.join(SWEEP_JSON).display(),
        html.display()
    );
    Ok(())
}
