#!/usr/bin/env bash
# Puts ONNX Runtime's shared library where slipway looks first without any setting:
# ./.slipway/onnxruntime/libonnxruntime.so.<version>, taken from the `onnxruntime` wheel on
# PyPI (the library ships inside it; nothing else is downloaded). Re-running is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${ONNXRUNTIME_VERSION:-1.32.0}"
dest=.slipway/onnxruntime
if [[ -f "$dest/libonnxruntime.so.$version" ]]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime.sh: fetching the onnxruntime $version wheel" >&2
python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$version"
mkdir -p "$dest"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(wheel,) = src.glob("onnxruntime-*.whl")
with zipfile.ZipFile(wheel) as z:
    libs = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so")]
    if not libs:
        sys.exit(f"{wheel.name} holds no libonnxruntime.so")
    for name in libs:
        (dest / pathlib.Path(name).name).write_bytes(z.read(name))
        print(f"onnxruntime.sh: {dest / pathlib.Path(name).name}", file=sys.stderr)
PY
