#!/usr/bin/env bash
# Build KenLM (lmplz, query, build_binary) from its public source, OUTSIDE this repository, for
# the n-gram parity fixture (tests/fixtures/ngram/) and the n-gram benchmark (BENCHMARKS.md).
#
# Usage: bench/build-kenlm.sh SRC_DIR_OR_GIT_DIR [BUILD_DIR]
#   SRC_DIR_OR_GIT_DIR: a KenLM checkout, or a bare git directory of github.com/kpu/kenlm
#                       (exported at its HEAD into a temporary folder first).
#   BUILD_DIR:          where to build (default /tmp/kenlm-build); binaries end up in BUILD_DIR/bin.
# Needs: cmake, a C++ compiler, Boost (program_options, system, thread, test), zlib, bz2, lzma:
#   apt-get update && apt-get install -y cmake libboost-program-options-dev libboost-system-dev \
#     libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
# Nothing of KenLM is ever copied into this repository.
set -euo pipefail
src=${1:?usage: bench/build-kenlm.sh SRC_DIR_OR_GIT_DIR [BUILD_DIR]}
build=${2:-/tmp/kenlm-build}
case "$(realpath -m "$build")" in "$(git rev-parse --show-toplevel 2>/dev/null || echo /nonexistent)"*)
  echo "error: build KenLM outside the repository (got $build)" >&2; exit 2;; esac
if [ -f "$src/HEAD" ] && [ -d "$src/objects" ]; then
  commit=$(git --git-dir="$src" rev-parse HEAD)
  tree=$(mktemp -d /tmp/kenlm-src.XXXXXX)
  git --git-dir="$src" archive HEAD | tar -x -C "$tree"
  src=$tree
else
  commit=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
fi
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >"$build/cmake.log"
cmake --build "$build" -j"$(nproc)" --target lmplz query build_binary >"$build/make.log"
echo "$commit" >"$build/KENLM_COMMIT"
echo "KenLM $commit built: $build/bin/{lmplz,query,build_binary}"
