#!/usr/bin/env bash
# All set-up on a fresh machine, idempotent and quick when already done:
# Debian packages, the Python venv (pinned by constraints.txt), and the service distributions
# (Elasticsearch zip and the HDFS minicluster from Maven Central). A second run makes no apt and
# no network call: every step checks what it really needs (files, versions) and stops there.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the local stack runs, as "check|package": the check is a file, or a command that must
# succeed. Package names are only what apt installs when a check fails (zabbix_sender comes with
# zabbix-agent: `zabbix-sender` is a virtual package dpkg never reports as installed).
NEEDS=(
  "/usr/lib/postgresql/15/bin/pg_ctl|postgresql"
  "/usr/lib/postgresql/15/bin/psql|postgresql"
  "/usr/share/zabbix-server-pgsql/schema.sql.gz|zabbix-server-pgsql"
  "/usr/sbin/zabbix_server -V 2>/dev/null | grep -q 'Zabbix) 6\.0\.'|zabbix-server-pgsql"
  "/usr/share/zabbix/api_jsonrpc.php|zabbix-frontend-php"
  "command -v php >/dev/null|php-cli"
  "php -m 2>/dev/null | grep -qx pgsql|php-pgsql"
  "/usr/bin/zabbix_sender|zabbix-agent"
  "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)/bin/java|openjdk-17-jdk-headless"
  "command -v mvn >/dev/null|maven"
)
missing=()
for need in "${NEEDS[@]}"; do
  check=${need%|*} pkg=${need##*|}
  if [[ $check == /* && $check != *" "* ]]; then [ -e "$check" ] && continue
  else bash -c "$check" && continue; fi
  [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
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
