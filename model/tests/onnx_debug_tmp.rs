mod onnx_support;
use dermo_model::arch::ArchSpec;
use dermo_model::onnx::{write_onnx, ExportOptions, Precision};
use dermo_model::{ModelFile, NamedWeights, Runtime};
use onnx_support::*;
use std::path::PathBuf;

#[test]
fn debug_lite0() {
    let w = NamedWeights::load_safetensors(&PathBuf::from(std::env::var("DERMO_PRETRAINED").unwrap())).unwrap();
    let mut spec = ArchSpec::efficientnet_lite0(1000);
    let mut m = metadata(256, "x");
    m.classes = (0..1000).map(|_| m.classes[0].clone()).collect();
    let _ = &mut spec;
    let images = real_images(6, 256);
    let mut outs = vec![];
    for p in [Precision::Fp32, Precision::Int8] {
        let o = ExportOptions { precision: p, input_size: 256, with_features: true, activation_ranges: None };
        let bytes = write_onnx(&spec, &w, &o, &m).unwrap();
        // bypass metadata class check: run tract directly
        let model = tract_onnx::prelude::Framework::model_for_read(&tract_onnx::onnx(), &mut bytes.as_slice()).unwrap();
        use tract_onnx::prelude::*;
        let plan = model.with_input_fact(0, f32::fact([1,3,256,256]).into()).unwrap().into_optimized().unwrap().into_runnable().unwrap();
        let mut r = vec![];
        for im in &images {
            let x = tract_ndarray::Array4::from_shape_vec((1,3,256,256), im.data.clone()).unwrap();
            let out = plan.run(tvec!(tract_onnx::prelude::Tensor::from(x).into())).unwrap();
            let l = out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            let f = out[1].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            let plane = f.len()/1280;
            let pooled: Vec<f32> = f.chunks(plane).map(|c| c.iter().sum::<f32>()/plane as f32).collect();
            r.push((l, pooled));
        }
        outs.push(r);
    }
    for i in 0..images.len() {
        let (lf, pf) = &outs[0][i]; let (lq, pq) = &outs[1][i];
        let rel = |a:&[f32],b:&[f32]| { let n: f32 = a.iter().zip(b).map(|(x,y)|(x-y)*(x-y)).sum(); let d: f32 = a.iter().map(|x|x*x).sum(); (n/d).sqrt() };
        println!("img {i}: top1 fp32 {} int8 {} | logits max {:.3} rel {:.4} | pooled rel {:.4}", argmax(lf), argmax(lq), lf.iter().cloned().fold(f32::MIN,f32::max), rel(lf,lq), rel(pf,pq));
    }
}
