#!/usr/bin/env bash
# Create .venv at the repository root and install periface with its pinned models. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"
# mediapipe drags in opencv-contrib-python, which writes the same cv2/ folder as the headless build; we want the
# headless build (no GUI libraries needed on servers), so it is installed last, on purpose.
python -m pip install -q --force-reinstall --no-deps "opencv-python-headless==4.11.0.86"
