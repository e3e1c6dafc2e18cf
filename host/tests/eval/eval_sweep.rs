//! `dermo sweep` end to end on a tiny grid (probe runs at 64 px on a small lesion-grouped
//! subset): every cell runs with two seeds, a second invocation skips what is done, and the
//! results table, sweep.json and the axis plot are written; `--status` shows every task done and
//! `--collect` writes the same table again. The Slurm executor itself runs in scripts/test-slurm.

use crate::eval_support::{dermo, write_subset};
use dermo_host::eval::sweep_results::{SweepResults, RESULTS_CSV, SWEEP_JSON};

#[test]
fn a_small_grid_runs_every_cell_twice_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_subset(&d.join("train.csv"), 0, 3, 6);
    write_subset(&d.join("val.csv"), 1, 3, 3);
    write_subset(&d.join("test.csv"), 2, 3, 3);
    let grid = d.join("grid.toml");
    std::fs::write(
        &grid,
        format!(
            r#"
[data]
train = "train.csv"
val = "val.csv"
test = "test.csv"
cache_root = "{cache}"

[base]
mode = "probe"
size = 64
epochs = 2
batch = 16
warmup_epochs = 0
patience = 0
lr = 1e-3

[sweep]
design = "one-at-a-time"
seeds = [0, 1]
resamples = 100

[[axis]]
name = "lr"
values = [1e-3, 1e-2]
question = "Does a larger learning rate help a linear probe?"
"#,
            cache = d.join("cache").display()
        ),
    )
    .unwrap();
    let out = d.join("sweep");
    let sweep = || {
        let o = dermo()
            .args(["sweep", "--device", "cpu"])
            .arg(&grid)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        stderr
    };
    let first = sweep();
    // lr = 1e-3 is the base: two distinct cells, each with both seeds.
    assert!(first.contains("2 cells × 2 seeds"), "{first}");
    let results = SweepResults::load(&out.join(SWEEP_JSON)).unwrap();
    assert_eq!(results.cells.len(), 2);
    assert_eq!(results.cells[0].name, "base");
    assert_eq!(results.cells[1].values["lr"], "0.01");
    for cell in &results.cells {
        assert_eq!(cell.runs.len(), 2);
        for run in &cell.runs {
            let bal = run.balanced_accuracy.unwrap();
            assert!(bal.low <= bal.estimate && bal.estimate <= bal.high);
        }
        // The seed mean, with one lesion bootstrap shared by both seeds.
        let mean = cell
            .balanced_accuracy_mean
            .expect("balanced accuracy over seeds");
        let expected = cell
            .runs
            .iter()
            .map(|r| r.balanced_accuracy.unwrap().estimate)
            .sum::<f64>()
            / cell.runs.len() as f64;
        assert!(
            (mean.estimate - expected).abs() < 1e-9,
            "{mean:?} vs {expected}"
        );
        assert!(mean.low <= mean.estimate && mean.estimate <= mean.high);
    }
    let table = std::fs::read_to_string(out.join(RESULTS_CSV)).unwrap();
    assert_eq!(table.lines().count(), 1 + 4);
    let plot = out.join("report/sweep-lr.png");
    assert!(image::open(&plot).is_ok(), "{} missing", plot.display());
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(html.contains("sweep-lr.png"));

    // Everything is done: the second run trains nothing.
    let second = sweep();
    assert_eq!(
        second.matches("done before, skipped").count(),
        4,
        "{second}"
    );
    assert!(!second.contains("training"), "{second}");

    // --status reads the run folders; a local sweep has no Slurm record, so it needs the grid.
    let status = dermo()
        .args(["sweep"])
        .arg(&grid)
        .arg("--out")
        .arg(&out)
        .arg("--status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains("4 tasks (2 cells × 2 seeds): 4 done, 0 running"),
        "{text}"
    );
    assert_eq!(text.matches("done        balanced accuracy").count(), 4);
    let no_grid = dermo()
        .args(["sweep", "--status"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!no_grid.status.success());
    assert!(String::from_utf8_lossy(&no_grid.stderr).contains("--status"));

    // --collect (what the Slurm collect job runs) writes the same table from the run folders.
    std::fs::remove_file(out.join(RESULTS_CSV)).unwrap();
    let collect = dermo()
        .args(["sweep"])
        .arg(&grid)
        .arg("--out")
        .arg(&out)
        .arg("--collect")
        .output()
        .unwrap();
    assert!(
        collect.status.success(),
        "{}",
        String::from_utf8_lossy(&collect.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join(RESULTS_CSV)).unwrap(),
        table
    );

    // Without Slurm's commands, --executor slurm says what is missing and submits nothing.
    let no_slurm = dermo()
        .args(["sweep", "--executor", "slurm"])
        .arg(&grid)
        .arg("--out")
        .arg(d.join("on-slurm"))
        .env("PATH", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_slurm.stderr);
    assert!(!no_slurm.status.success());
    assert!(
        stderr.contains("sbatch not found") && stderr.contains("without --executor slurm"),
        "{stderr}"
    );
    assert!(!d.join("on-slurm").exists());
}
