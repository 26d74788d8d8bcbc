# Sourced by the scripts: point escnet at ../shared when it exists and nothing else was chosen.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# ../shared/data holds the full-band ESC-50 (Opus, 48 kHz); escnet reads any copy of it.
if [ -z "${ESCNET_DATA_DIR:-}" ] && [ -d "$here/../shared/data" ]; then
  export ESCNET_DATA_DIR="$here/../shared/data"
fi
if [ -z "${ESCNET_WEIGHTS_DIR:-}" ] && [ -d "$here/../shared/weights" ]; then
  export ESCNET_WEIGHTS_DIR="$here/../shared/weights"
fi
