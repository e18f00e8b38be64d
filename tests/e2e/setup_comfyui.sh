#!/usr/bin/env bash
# Set up the real ComfyUI used by the end-to-end tests (tests/e2e): see setup_comfyui.py.
# Usage: bash tests/e2e/setup_comfyui.sh [--force]     (PYTHON=... to pick the project's interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHON
exec "$PYTHON" "$here/setup_comfyui.py" "$@"
