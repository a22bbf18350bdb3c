#!/usr/bin/env bash
# Build the compiled modules with AddressSanitizer and UndefinedBehaviorSanitizer and run the
# inputs most likely to break them: the hostile corpus, the decoder's bad-input tests and a
# short fuzz of every tool (tests/test_fuzz_tools.py with fewer cases).
#
# The sanitized modules go into a private copy of the package (build/sanitize/site/), put
# first on PYTHONPATH, so the installed package and a development tree are left alone.
# Cython's own bounds checks are off, as in the release build: the sanitizers check what
# users run. Any report aborts the process (a crash the tests and the fuzzer count).
#
#   scripts/sanitize_check.sh                     # build, then the checks (about 5 minutes)
#   XPROF_FUZZ_EXAMPLES=2000 scripts/sanitize_check.sh
#   SANITIZE_SKIP_TESTS=1 scripts/sanitize_check.sh && \
#     LD_PRELOAD=$(gcc -print-file-name=libasan.so) PYTHONPATH=build/sanitize/site python3 ...
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build/sanitize/cmake
site=build/sanitize/site
sanitizers=${SANITIZERS:-address,undefined}
flags="-fsanitize=${sanitizers} -fno-sanitize-recover=all -fno-omit-frame-pointer -g"

python3 -c "import cython_cmake" 2>/dev/null || python3 -m pip install -q "cython>=3.0.10" "cython-cmake>=0.2"
cmake_modules=$(python3 -c "import cython_cmake, os; print(os.path.join(os.path.dirname(cython_cmake.__file__), 'cmake'))")
start=$(date +%s)
cmake -S . -B "$build_dir" -DSKBUILD_PROJECT_NAME=xprof_core -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_C_FLAGS_RELEASE="-O1" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=${sanitizers}" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=${sanitizers}" \
  -DCMAKE_MODULE_PATH="$cmake_modules" -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" >/dev/null

# The package's Python files and the sanitized modules, nothing else.
rm -rf "$site"
mkdir -p "$site"
cp -r src/xprof_core "$site/"
find "$site" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
find "$build_dir" -maxdepth 1 -name '*.so' -exec cp {} "$site/xprof_core/_fast/" \;
echo "sanitized build ($sanitizers) in $(($(date +%s) - start)) s: $(ls "$site"/xprof_core/_fast/*.so | xargs -n1 basename | tr '\n' ' ')"

asan_lib=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD="$asan_lib${LD_PRELOAD:+ $LD_PRELOAD}"
# Python's own allocations are never freed at exit: leak reports would be noise.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:symbolize=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$PWD/$site"

# The modules that load are the sanitized ones, and the runtime is really there.
python3 - <<'EOF'
import importlib, os, pathlib
site = os.environ["PYTHONPATH"]
names = sorted(p.name.split(".")[0] for p in pathlib.Path(site, "xprof_core", "_fast").glob("*.so"))
for name in names:
    module = importlib.import_module(f"xprof_core._fast.{name}")
    assert module.__file__.startswith(site), module.__file__
maps = open("/proc/self/maps").read()
assert "libasan" in maps, "AddressSanitizer's runtime is not loaded"
print("sanitized modules", ", ".join(names), "load from", site)
EOF

if [ -n "${SANITIZE_SKIP_TESTS:-}" ]; then
  exit 0
fi
export XPROF_FUZZ_EXAMPLES=${XPROF_FUZZ_EXAMPLES:-150}
export XPROF_FUZZ_HANG_S=${XPROF_FUZZ_HANG_S:-30}  # everything runs 2-3x slower here
start=$(date +%s)
python3 -m pytest -q -p no:cacheprovider -m "not slow" \
  tests/test_hostile.py tests/test_bad_input.py tests/test_fuzz_tools.py
echo "sanitized test run: $(($(date +%s) - start)) s"
