//! Augmented cached copies (`cached_views`) on a small real subset of HAM10000. In a test binary
//! of its own: the copies draw their crops from libtorch's global generator, which tests running
//! in parallel threads of one process would share.

mod train_support;

use dermo_host::train::dataset::TrainData;
use dermo_host::train::features::{frozen_features, Frozen, View};
use dermo_host::train::net::EfficientNetLite;
use dermo_host::train::pretrained::{self, Head};
use dermo_host::train::recipe::{Mode, Recipe};
use dermo_host::train::{train, TrainOptions};
use dermo_model::arch::ArchSpec;
use dermo_model::PreprocessConfig;
use tch::{nn, Device, Kind, Tensor};
use train_support::{pretrained, write_split};

#[test]
fn augmented_cached_views_are_new_pixels_repeatable_and_train() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v) = write_split(dir.path(), 6, 2, None);
    let cache = dir.path().join("cache");
    let cfg = PreprocessConfig {
        size: 64,
        color_constancy: false,
    };
    let data = TrainData::load(&t, &v, &cfg, &cache).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(7));
    pretrained::load_imagenet(&vs, &pretrained(), Head::Fresh).unwrap();
    let recipe = Recipe {
        mode: Mode::Partial,
        preprocess: cfg,
        batch: 16,
        epochs: 1,
        frozen_blocks: 10,
        warmup_epochs: 0.0,
        patience: 0,
        ..Recipe::default()
    };
    let features = |view| {
        frozen_features(
            &net,
            &data.train,
            Frozen::Blocks(10),
            view,
            "test-weights",
            Device::Cpu,
            &cache,
        )
        .unwrap()
        .to_kind(Kind::Float)
    };
    let copy = |index| View::Augmented {
        index,
        seed: 0,
        augment: &recipe.augment,
    };
    let plain = features(View::Plain);
    let first = features(copy(1));
    assert_eq!(first.size(), plain.size());
    let gap = |a: &Tensor, b: &Tensor| f64::try_from((a - b).abs().mean(Kind::Float)).unwrap();
    assert!(gap(&first, &plain) > 1e-3, "copy 1 equals the plain images");
    assert!(
        gap(&features(copy(2)), &first) > 1e-3,
        "copies 1 and 2 are the same"
    );
    // Each copy has its own cache file, and reading it back gives the same features.
    let files: Vec<String> = std::fs::read_dir(cache.join("features"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.contains("-k10-v1-")), "{files:?}");
    assert!(features(copy(1)).equal(&first));
    // Recomputed from scratch, the same seed draws the same crops.
    std::fs::remove_dir_all(cache.join("features")).unwrap();
    assert!(gap(&features(copy(1)), &first) < 1e-6);

    let mut recipe = recipe;
    recipe.set("cached_views=3").unwrap();
    tch::set_num_threads(2);
    let options = TrainOptions {
        device: Device::Cpu,
        cache_root: cache.clone(),
        pretrained: pretrained(),
        resume: false,
        command_line: vec!["test".into()],
        progress: false,
        external: None,
        select: None,
        init: None,
    };
    let summary = train(&recipe, &data, &dir.path().join("run"), &options).unwrap();
    assert_eq!(summary.epochs, 1);
}
