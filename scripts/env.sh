# Sourced by the scripts: point escnet at ../shared when it exists and nothing else was chosen.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${ESCNET_DATA_DIR:-}" ] && [ -d "$here/../shared/datasets" ]; then
  export ESCNET_DATA_DIR="$here/../shared/datasets"
fi
if [ -z "${ESCNET_WEIGHTS_DIR:-}" ] && [ -d "$here/../shared/weights" ]; then
  export ESCNET_WEIGHTS_DIR="$here/../shared/weights"
fi
