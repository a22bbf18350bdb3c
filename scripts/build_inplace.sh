#!/usr/bin/env bash
# Build the compiled modules into src/xprof_core/_fast/ for a development tree:
# then `PYTHONPATH=src python3 -m pytest` runs against this checkout without
# installing it. BUILD_TYPE=Debug (the default) turns on Cython's bounds
# checks; BUILD_TYPE=Release builds what `pip install .` builds.
set -euo pipefail
cd "$(dirname "$0")/.."
build_type=${BUILD_TYPE:-Debug}
build_dir=build/inplace-${build_type,,}
cmake_modules=$(python3 -c "import cython_cmake, os; print(os.path.join(os.path.dirname(cython_cmake.__file__), 'cmake'))")
cmake -S . -B "$build_dir" -DSKBUILD_PROJECT_NAME=xprof_core -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_MODULE_PATH="$cmake_modules" -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
find "$build_dir" -maxdepth 1 -name '*.so' -exec cp {} src/xprof_core/_fast/ \;
ls src/xprof_core/_fast/*.so
