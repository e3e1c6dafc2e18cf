//! The ImageNet weights really load: the 1000-way network, fed through the shared preprocessing
//! contract at 224 px, names scikit-image's cat and coffee photos as ImageNet does.

use crate::train_support::own_torch_generator;
use dermo_host::train::net::EfficientNetLite;
use dermo_host::train::pretrained::{self, Head};
use dermo_model::arch::ArchSpec;
use dermo_model::preprocess::{preprocess_file, PreprocessConfig};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

fn skimage_data() -> PathBuf {
    let python = std::env::var("VIRTUAL_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    python.join("lib/python3.11/site-packages/skimage/data")
}

fn top5(net: &EfficientNetLite, file: &Path) -> Vec<i64> {
    let cfg = PreprocessConfig {
        size: 224,
        color_constancy: false,
    };
    let t = preprocess_file(file, &cfg).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let x = Tensor::from_slice(&t.data).reshape(&shape);
    let logits = tch::no_grad(|| net.forward_t(&x, false));
    let (_, idx) = logits.softmax(-1, tch::Kind::Float).topk(5, -1, true, true);
    Vec::<i64>::try_from(idx.flatten(0, -1)).unwrap()
}

#[test]
fn imagenet_weights_classify_natural_photos() {
    let _generator = own_torch_generator(); // the new network draws its initial weights
    let weights = pretrained::default_path().expect("source scripts/env.sh (DERMO_PRETRAINED)");
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(1000));
    let loaded = pretrained::load_imagenet(&vs, &weights, Head::ImageNet).unwrap();
    assert_eq!(loaded, 247);

    let data = skimage_data();
    let cat = top5(&net, &data.join("chelsea.png"));
    assert!(
        (281..=285).contains(&cat[0]),
        "chelsea.png: top-5 {cat:?}, expected a cat class (281–285) first"
    );
    let coffee = top5(&net, &data.join("coffee.png"));
    assert!(
        coffee[0] == 967 || coffee[0] == 504,
        "coffee.png: top-5 {coffee:?}, expected espresso (967) or coffee mug (504) first"
    );
}

#[test]
fn a_seven_way_head_loads_everything_but_fc() {
    let _generator = own_torch_generator(); // the new network draws its initial weights
    let weights = pretrained::default_path().expect("source scripts/env.sh (DERMO_PRETRAINED)");
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(7));
    assert_eq!(
        pretrained::load_imagenet(&vs, &weights, Head::Fresh).unwrap(),
        245
    );
    // Keeping the 1000-way head on a 7-way network is a shape error that names the tensor.
    let err = pretrained::load_imagenet(&vs, &weights, Head::ImageNet).unwrap_err();
    assert!(err.to_string().contains("`_fc."), "{err}");
}
