// CPU autocast for the trainer. tch 0.26 exposes only CUDA autocast (`tch::autocast`); these
// three functions switch libtorch's CPU autocast (bf16) on and off the same way PyTorch's
// `torch.autocast("cpu", torch.bfloat16)` context manager does, including the weight-cast cache
// that must be cleared when the outermost region ends (or a region would reuse stale casts of
// weights that the optimizer has since updated).
#include <ATen/autocast_mode.h>

extern "C" {

// Turns bf16 autocast on for the CPU and enters one nesting level. Returns the previous state,
// which `dermo_cpu_autocast_exit` restores. Never throws.
bool dermo_cpu_autocast_enter() {
  try {
    bool previous = at::autocast::is_autocast_enabled(at::kCPU);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::increment_nesting();
    return previous;
  } catch (...) {
    return false;
  }
}

// Leaves one nesting level; the outermost exit clears the cast cache.
void dermo_cpu_autocast_exit(bool previous) {
  try {
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(at::kCPU, previous);
  } catch (...) {
  }
}

// Whether CPU autocast is on (for tests).
bool dermo_cpu_autocast_is_enabled() {
  try {
    return at::autocast::is_autocast_enabled(at::kCPU);
  } catch (...) {
    return false;
  }
}
}
