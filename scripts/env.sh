# Sourced by scripts/*: loads what scripts/setup recorded, so nobody exports variables by hand.
DERMO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$DERMO_ROOT/.dermo-env" ]; then
  echo "dermo: $DERMO_ROOT/.dermo-env is missing; run scripts/setup first" >&2
  exit 1
fi
# shellcheck disable=SC1091
. "$DERMO_ROOT/.dermo-env"
export DERMO_SHARED="${DERMO_SHARED:-$DERMO_ROOT/../shared}"
export DERMO_HAM10000="${DERMO_HAM10000:-$DERMO_SHARED/data/ham10000}"

# The two builds every script shares. They are exactly the commands `scripts/test` tests with, so after the suite has
# run they build nothing: a narrower `cargo build -p dermo-device` would unify features differently (no dev-
# dependencies, no dermo-host) and compile tract and its dependencies a second time. Both leave the binaries and the
# examples (x86-64 only) where `cargo build` would (target/[TRIPLE/]release/{dermo-scope,examples/}).
dermo_build_x86() { cargo test --workspace --release --no-run "$@"; }
# The aarch64 build skips the examples (benchmark and demo helpers that only ever run on x86-64) and doctests. Then
# dermo-scope is built again as the device gets it, without the tests' dev-dependencies and so without dermo-model's
# host-only `writer` feature (about 35 s: only dermo-model and dermo-device recompile); that binary replaces the
# tests' one at target/aarch64-unknown-linux-gnu/release/dermo-scope, so the suite runs the device's own build.
DERMO_AARCH64_TESTS=(--release --target aarch64-unknown-linux-gnu -p dermo-model -p dermo-device --lib --bins --tests)
dermo_build_aarch64() {
  cargo test "${DERMO_AARCH64_TESTS[@]}" --no-run "$@" &&
    cargo build --release --target aarch64-unknown-linux-gnu -p dermo-device --bin dermo-scope "$@"
}
