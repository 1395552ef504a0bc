#!/usr/bin/env bash
# All set-up on a fresh machine, idempotent and quick when already done:
# Debian packages, the Python venv (pinned by constraints.txt), and the service distributions
# (Elasticsearch zip and the HDFS minicluster from Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql zabbix-server-pgsql zabbix-frontend-php php-pgsql php-cli zabbix-sender zabbix-agent
              openjdk-17-jdk-headless maven)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts these on install; monetl runs its own instances on its own ports and data dirs.
  for unit in zabbix-server zabbix-agent postgresql apache2; do
    $SUDO systemctl stop "$unit" >/dev/null 2>&1 || service "$unit" stop >/dev/null 2>&1 || true
  done
fi

PY=${MONETL_PYTHON:-$(command -v python3.11 || command -v python3)}
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.monetl-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "setup: building .venv with $PY (pinned by constraints.txt)"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e ".[dev]"
  echo "$stamp" > .venv/.monetl-stamp
fi

# Service distributions (Maven downloads, a small Java build); no service is started here.
.venv/bin/monetl services install
