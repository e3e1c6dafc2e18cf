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
