#!/usr/bin/env bash
# Everything a fresh machine needs, in one place (Debian/Ubuntu, Python >= 3.10, a C++17 compiler):
#   bash dev.sh demo    set up, then compute descriptors of the bundled snapshot and render a PNG
#   bash dev.sh test    set up, then run the test suite
#   bash dev.sh docs    set up, then build the documentation site into docs/_build/html (warnings are errors)
#   bash dev.sh bench   set up, then run the benchmarks (writes benchmarks/RESULTS.md; about 45 minutes)
# The virtual environment goes to .venv (override with OVITO_MLCLASS_VENV).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${OVITO_MLCLASS_VENV:-.venv}
PYTHON=${PYTHON:-python3}

system_packages() {
  # OVITO's OpenGL renderer needs a Vulkan loader and a (software) driver to render headless.
  if [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >/dev/null
  else
    echo "note: headless rendering needs: sudo apt-get install -y libvulkan1 mesa-vulkan-drivers" >&2
  fi
}

python_env() {  # $1: extras of the package to install
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  pip install -q --upgrade pip
  # torch first, pinned: an unpinned resolve may fetch a multi-GB CUDA build where a CPU one will do
  python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
  pip install -q ".[$1]"   # builds the C++ kernel
}

case "${1:-}" in
  demo)
    system_packages
    python_env test
    ovito-mlclass demo -o demo_output
    ;;
  test)
    system_packages
    python_env test
    pytest   # not `python -m pytest`: the tests must import the installed, compiled package
    ;;
  docs)
    system_packages
    python_env "test,docs"
    sphinx-build -W --keep-going -b html docs docs/_build/html
    ;;
  bench)
    python_env bench
    python benchmarks/bench_descriptors.py "${@:2}"
    python benchmarks/bench_classify.py
    python benchmarks/bench_accuracy.py || echo "accuracy benchmark skipped: it needs the MD validation data (README: Training data)" >&2
    python benchmarks/bench_accuracy.py --models openworld --section accuracy-openworld \
      || echo "open-world accuracy benchmark skipped: it needs the open-world MD data" >&2
    python benchmarks/bench_classify.py --models openworld metals --section classify-openworld
    python benchmarks/bench_classify.py --models openworld --lattice diamond --cells 50 --section classify-diamond
    python benchmarks/bench_certificates.py || echo "certificate benchmark skipped: it needs the open-world MD data" >&2
    python benchmarks/bench_classify.py --models metals metals-pointnet --section classify-pointnet
    python benchmarks/bench_accuracy.py --models metals metals-pointnet ice ice-pointnet --section accuracy-pointnet \
      || echo "PointNet accuracy benchmark skipped: it needs the MD validation data" >&2
    OMP_NUM_THREADS=1 python benchmarks/bench_unsupervised.py || echo "unsupervised benchmark skipped: it needs the MD validation data (README: Training data)" >&2
    OMP_NUM_THREADS=1 python benchmarks/bench_properties.py --epochs 15 || echo "property benchmark skipped: it needs ../shared/data (or OVITO_MLCLASS_DATA)" >&2
    OMP_NUM_THREADS=1 python benchmarks/bench_properties_krr.py || echo "composition-model benchmark skipped: it needs ../shared/data" >&2
    python benchmarks/bench_scale.py   # Dask vs serial on 100 x 100k atoms, in-situ LAMMPS overhead (~10 minutes)
    python benchmarks/bench_orientation.py   # orientation near melting vs PTM (MD snapshots made on the first run)
    python benchmarks/bench_user_training.py   # a model from perfect lattices alone (MD with the wheel's potentials)
    python benchmarks/bench_install.py   # install size and start-up, against the revision before the lean install
    ;;
  *)
    sed -n '2,7p' "$0"
    exit 2
    ;;
esac
