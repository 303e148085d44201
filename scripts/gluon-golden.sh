#!/usr/bin/env bash
# Writes the Gluon golden fixtures (tests/fixtures/gluon/*.json) from real MXNet 1.9.1.
#
#   scripts/gluon-golden.sh [extra args for gluon_golden.py]
#
# Makes a Python virtual environment with MXNet 1.9.1 and numpy 1.23.5 from PyPI if it is
# missing (default .venv-gluon in the repository root; set GLUON_VENV to use another), then
# runs scripts/gluon_golden.py --out tests/fixtures/gluon. Needs python3 with venv (MXNet
# 1.9.1 wheels are for x86_64 Linux, CPython 3.6 to 3.10 officially; newer CPythons
# install and run it too). tests/gluon_fidelity.rs compares boson with the fixtures.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GLUON_VENV:-$root/.venv-gluon}"
python="${PYTHON:-python3}"

if ! "$venv/bin/python" -c 'import mxnet, numpy; assert mxnet.__version__ == "1.9.1"' \
        >/dev/null 2>&1; then
    echo "gluon-golden: creating $venv with mxnet==1.9.1 numpy==1.23.5" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet mxnet==1.9.1 numpy==1.23.5
fi

cd "$root"
exec "$venv/bin/python" scripts/gluon_golden.py --out tests/fixtures/gluon "$@"
