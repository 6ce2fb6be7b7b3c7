#!/usr/bin/env bash
# One entry point for a fresh machine: each command sets up .venv itself, then runs.
#   ./run.sh test [ARGS]     pytest tests: the untimed on 2 workers, then the timed alone
#   ./run.sh main [ARGS]     a local study of all six (ci budget, ~15 min here), gate, report
#   ./run.sh gate [ARGS]     the CI regression gate: pytest bench at the ci tier vs baselines
#   ./run.sh setup           only create/refresh .venv (exactly the versions in constraints.txt)
#   ./run.sh lock            refresh constraints.txt from the newest releases (review the diff)
# Set CNNBENCH_BACKENDS=1 to also install the JAX and PyTorch (CPU) backends, and
# CNNBENCH_CLUSTER=1 to install Ray (the study's ray executor).
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed

setup() {
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local want
  want=$(cat pyproject.toml constraints.txt
         echo "backends=${CNNBENCH_BACKENDS:-0} cluster=${CNNBENCH_CLUSTER:-0}")
  local extras=dev
  if [ "${CNNBENCH_CLUSTER:-0}" = 1 ]; then extras="$extras,cluster"; fi
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then return; fi
  # Byte-compiled at install (pip's default), not left to the first import: where
  # PYTHONDONTWRITEBYTECODE is set, as on these machines, every process would compile
  # TensorFlow from source (--no-compile cut set-up by 52 s and slowed the tests by 260 s).
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  if [ "${CNNBENCH_BACKENDS:-0}" = 1 ]; then
    # The CPU build; a bare "torch" would pull a multi-GB CUDA build.
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt "torch==2.13.0"
    extras="$extras,backends"
  fi
  # Apache Otava (the history's change points) pins numpy 2.2 and brings database and chat
  # clients for its command line; its detector needs numpy and scipy only. So it goes in
  # without its dependencies, last, and comes out before pip resolves anything else (else
  # pip reports its unmet pins on every later install).
  "$VENV/bin/python" -m pip uninstall --quiet --yes apache-otava 2> /dev/null || true
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[$extras]"
  "$VENV/bin/python" -m pip install --quiet --no-deps -c constraints.txt apache-otava
  printf '%s' "$want" > "$STAMP"
}

lock() {
  # Everything the gate can use, newest releases, in a throwaway venv; then pip freeze.
  local tmp
  tmp=$(mktemp -d)
  "$PY" -m venv "$tmp/venv"
  "$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
  "$tmp/venv/bin/python" -m pip install --quiet "torch==2.13.0"  # the CPU build (see setup)
  # pytest held below 9.2 until a pytest-xdist that groups tests under it is out (docs/code.md).
  "$tmp/venv/bin/python" -m pip install --quiet -e ".[backends,dev,cluster]" "pytest<9.2"
  "$tmp/venv/bin/python" -m pip install --quiet --no-deps apache-otava  # as setup does
  {
    sed -n '1,3p' constraints.txt
    "$tmp/venv/bin/python" -m pip freeze --exclude-editable
  } > constraints.txt.new
  mv constraints.txt.new constraints.txt
  rm -rf "$tmp"
  git diff --stat -- constraints.txt || true
}

tests() {
  # pytest tests, in two parts: the tests that time nothing on two workers (pytest-xdist),
  # then those marked `timed`, whose verdicts depend on speed, alone on the machine.
  # Arguments go to both; a part that selects no test (pytest's exit status 5) is no failure.
  local untimed=0 timed=0
  "$VENV/bin/python" -m pytest tests -m "not timed" -n "${CNNBENCH_TEST_WORKERS:-2}" \
    --dist loadgroup "$@" || untimed=$?
  "$VENV/bin/python" -m pytest tests -m timed "$@" || timed=$?
  if [ "$untimed" = 5 ] && [ "$timed" = 5 ]; then return 5; fi
  for status in "$untimed" "$timed"; do
    if [ "$status" != 0 ] && [ "$status" != 5 ]; then return "$status"; fi
  done
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  lock) lock ;;
  test) setup; tests "$@" ;;
  main) setup; exec "$VENV/bin/python" -m bench main "$@" ;;
  gate)
    setup
    exec "$VENV/bin/python" -m pytest bench --cnnbench-budget=ci \
      --cnnbench-out=results/ci --benchmark-json=results/ci/benchmark.json \
      --benchmark-autosave --benchmark-storage=file://results/history "$@" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
