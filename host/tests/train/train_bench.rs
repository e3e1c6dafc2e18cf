//! Training throughput of the trainer's full fine-tune step, for `scripts/bench` (ignored in the
//! normal suite). Prints one `key=value` line. Knobs: DERMO_BENCH_SIZE, DERMO_BENCH_BATCH,
//! DERMO_BENCH_STEPS, DERMO_BENCH_THREADS (0: all cores), DERMO_BENCH_AMP and
//! DERMO_BENCH_CHANNELS_LAST (1 or 0; both default to the recipe's default, on).

use dermo_host::train::recipe::Recipe;
use dermo_host::train::trainer::bench_full_steps;
use dermo_model::PreprocessConfig;
use tch::Device;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark: run by scripts/bench"]
fn bench_train_throughput() {
    let threads = knob("DERMO_BENCH_THREADS", 0);
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    tch::set_num_threads(threads as i32);
    let recipe = Recipe {
        preprocess: PreprocessConfig {
            size: knob("DERMO_BENCH_SIZE", 128) as u32,
            color_constancy: false,
        },
        batch: knob("DERMO_BENCH_BATCH", 16),
        weight_decay: 1e-2,
        amp: knob("DERMO_BENCH_AMP", 1) == 1,
        channels_last: knob("DERMO_BENCH_CHANNELS_LAST", 1) == 1,
        ..Recipe::default()
    };
    let precision = dermo_host::train::precision::Precision::choose(recipe.amp, Device::Cpu);
    let steps = knob("DERMO_BENCH_STEPS", 6);
    let pretrained = dermo_host::train::pretrained::default_path().unwrap();
    let ips = bench_full_steps(&recipe, Device::Cpu, &pretrained, 2, steps).unwrap();
    println!(
        "impl=dermo-tch images_per_s={ips:.3} batch={} size={} steps={steps} threads={threads} \
         precision={} channels_last={}",
        recipe.batch,
        recipe.preprocess.size,
        precision.name().replace(' ', "-"),
        recipe.channels_last
    );
}
