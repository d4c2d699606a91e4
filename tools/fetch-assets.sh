#!/usr/bin/env bash
# Reproduces assets/models/ and assets/samples/ from the package registries, then checks them
# against assets/SHA256SUMS.
#
#   bash tools/fetch-assets.sh          # refetch into a temp dir, copy into assets/, verify
#   bash tools/fetch-assets.sh --check  # only verify the committed files against the pins
#
# Sources (both reachable through their ordinary clients, nothing else is downloaded):
# - npm `@vladmandic/face-api@1.7.15` (MIT): the SSD-MobileNetV1 face detector and the
#   FaceLandmark68Net weights (TF.js layers format: manifest JSON + one .bin), the six demo
#   photos `demo/sample1..6.jpg`, and the package LICENSE.
# - PyPI `scikit-image==0.24.0` wheel (BSD-3 code; the astronaut photo is public domain,
#   NASA): `skimage/data/astronaut.png`, plus the package's LICENSE.txt.
# Needs: npm, pip (any Python 3), unzip, tar, sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."

FACEAPI="@vladmandic/face-api@1.7.15"
SKIMAGE="scikit-image==0.24.0"

if [ "${1:-}" != "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$FACEAPI" >/dev/null && tar xzf vladmandic-face-api-*.tgz)
  mkdir -p assets/models/face-api assets/samples
  for f in ssd_mobilenetv1_model.bin ssd_mobilenetv1_model-weights_manifest.json \
           face_landmark_68_model.bin face_landmark_68_model-weights_manifest.json; do
    cp "$tmp/package/model/$f" "assets/models/face-api/$f"
  done
  cp "$tmp/package/LICENSE" assets/models/face-api/LICENSE
  for i in 1 2 3 4 5 6; do
    cp "$tmp/package/demo/sample$i.jpg" "assets/samples/sample$i.jpg"
  done
  cp "$tmp/package/LICENSE" assets/samples/LICENSE-face-api-samples

  pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_17_x86_64 --dest "$tmp/wheel" "$SKIMAGE"
  whl=$(ls "$tmp"/wheel/scikit_image-*.whl)
  unzip -q -o "$whl" 'skimage/data/astronaut.png' 'scikit_image-*.dist-info/*' -d "$tmp/sk"
  cp "$tmp/sk/skimage/data/astronaut.png" assets/samples/astronaut.png
  cp "$tmp"/sk/scikit_image-*.dist-info/LICENSE.txt assets/samples/LICENSE-scikit-image.txt
fi

(cd assets && sha256sum -c --quiet SHA256SUMS)
echo "assets: all files match assets/SHA256SUMS"
