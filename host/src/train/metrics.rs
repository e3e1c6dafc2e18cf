//! Per-epoch figures and `metrics.csv`, the run's one-row-per-epoch log.

use anyhow::Context;
use dermo_model::{CLASSES, NUM_CLASSES};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Accuracy, balanced accuracy and per-class recall of predicted vs true classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    /// Mean recall over the classes present in the labels.
    pub balanced_accuracy: f64,
    /// Recall per class in logit order; `None` when the class has no example.
    pub recall: [Option<f64>; NUM_CLASSES],
}

impl Scores {
    pub fn new(predicted: &[usize], labels: &[usize]) -> Scores {
        let mut hits = [0usize; NUM_CLASSES];
        let mut support = [0usize; NUM_CLASSES];
        for (&p, &l) in predicted.iter().zip(labels) {
            support[l] += 1;
            hits[l] += usize::from(p == l);
        }
        let recall: [Option<f64>; NUM_CLASSES] =
            std::array::from_fn(|c| (support[c] > 0).then(|| hits[c] as f64 / support[c] as f64));
        let present: Vec<f64> = recall.iter().flatten().copied().collect();
        let n = labels.len().max(1) as f64;
        Scores {
            accuracy: hits.iter().sum::<usize>() as f64 / n,
            balanced_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
            recall,
        }
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 1-based number of the finished epoch.
    pub epoch: usize,
    /// Optimizer updates done so far.
    pub step: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val: Scores,
    /// Learning rate of the epoch's last update.
    pub lr: f64,
    /// Training throughput (examples per second of the epoch's training phase).
    pub images_per_s: f64,
    /// Melanoma-vs-rest ROC AUC on the run's external validation set, when it has one.
    pub external_auc: Option<f64>,
}

pub fn header() -> String {
    let mut cols = vec![
        "epoch",
        "step",
        "train_loss",
        "val_loss",
        "val_acc",
        "val_bal_acc",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    cols.extend(CLASSES.iter().map(|c| format!("recall_{}", c.code())));
    cols.extend(["lr", "images_per_s", "external_auc"].map(String::from));
    cols.join(",")
}

impl EpochRow {
    pub fn to_csv(&self) -> String {
        let mut f = vec![
            self.epoch.to_string(),
            self.step.to_string(),
            format!("{:.6}", self.train_loss),
            format!("{:.6}", self.val_loss),
            format!("{:.6}", self.val.accuracy),
            format!("{:.6}", self.val.balanced_accuracy),
        ];
        f.extend(
            self.val
                .recall
                .iter()
                .map(|r| r.map(|r| format!("{r:.6}")).unwrap_or_default()),
        );
        f.push(format!("{:.3e}", self.lr));
        f.push(format!("{:.2}", self.images_per_s));
        f.push(
            self.external_auc
                .map(|a| format!("{a:.6}"))
                .unwrap_or_default(),
        );
        f.join(",")
    }
}

/// `metrics.csv` in a run folder.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log for a run that has finished `done_epochs` epochs: rows of later epochs (from
    /// an epoch whose checkpoint never committed) are dropped, so a resumed run never repeats a row.
    /// Rows written before a column was added get an empty field for it.
    pub fn open(path: &Path, done_epochs: usize) -> anyhow::Result<MetricsLog> {
        let columns = header().split(',').count();
        let mut lines = vec![header()];
        if done_epochs > 0 {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
                let epoch: usize = line
                    .split(',')
                    .next()
                    .and_then(|e| e.parse().ok())
                    .with_context(|| format!("{}: malformed row {line:?}", path.display()))?;
                if epoch <= done_epochs {
                    let missing = columns.saturating_sub(line.split(',').count());
                    lines.push(format!("{line}{}", ",".repeat(missing)));
                }
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        crate::files::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(MetricsLog {
            path: path.to_owned(),
        })
    }

    /// Appends one row and makes it durable.
    pub fn append(&self, row: &EpochRow) -> anyhow::Result<()> {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        writeln!(f, "{}", row.to_csv())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_accuracy_averages_present_classes() {
        // class 0: 2/2, class 5: 1/4; others absent.
        let s = Scores::new(&[0, 0, 5, 0, 0, 0], &[0, 0, 5, 5, 5, 5]);
        assert!((s.accuracy - 0.5).abs() < 1e-12);
        assert!((s.balanced_accuracy - 0.625).abs() < 1e-12);
        assert_eq!(s.recall[1], None);
    }

    #[test]
    fn reopening_drops_rows_past_the_committed_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let log = MetricsLog::open(&path, 0).unwrap();
        let row = |epoch| EpochRow {
            epoch,
            step: epoch * 10,
            train_loss: 1.0,
            val_loss: 1.0,
            val: Scores::new(&[0], &[0]),
            lr: 1e-3,
            images_per_s: 5.0,
            external_auc: (epoch > 1).then_some(0.75),
        };
        for e in 1..=3 {
            log.append(&row(e)).unwrap();
        }
        let log = MetricsLog::open(&path, 2).unwrap();
        log.append(&row(3)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let epochs: Vec<&str> = text.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(epochs, ["1", "2", "3"]);
        assert!(text.lines().all(|l| l.split(',').count() == 16), "{text}");
        assert!(text.lines().nth(2).unwrap().ends_with(",0.750000"));
        // A log from before the external_auc column is padded on resume.
        let old: String = text
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_owned() + "\n")
            .collect();
        fs::write(&path, old).unwrap();
        MetricsLog::open(&path, 3).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| l.split(',').count() == 16), "{text}");
    }
}
