#!/usr/bin/env bash
# Install the Docker Compose CLI plugin (`docker compose`) when it is missing, by building it from
# its Go module (the only registry route on these machines: no binary downloads). Idempotent: exits
# at once when the pinned version is already installed. Needs Go >= 1.24 and the docker client.
#   docker/install-compose.sh            # installs into ${DOCKER_CONFIG:-~/.docker}/cli-plugins
set -euo pipefail
cd "$(dirname "$0")/compose-cli"

VERSION=v2.40.3   # keep equal to the github.com/docker/compose/v2 requirement in go.mod
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
PLUGIN="$PLUGIN_DIR/docker-compose"

if [ -x "$PLUGIN" ] && "$PLUGIN" version --short 2>/dev/null | grep -qx "${VERSION#v}"; then
  exit 0
fi
command -v go >/dev/null || { echo "install-compose: Go is required (apt-get install golang-go, >= 1.24)" >&2; exit 1; }

echo "install-compose: building docker compose $VERSION from Go modules (first time: a few minutes)"
mkdir -p "$PLUGIN_DIR"
go build -trimpath -buildvcs=false -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$VERSION" \
  -o "$PLUGIN.tmp" github.com/docker/compose/v2/cmd
mv "$PLUGIN.tmp" "$PLUGIN"
"$PLUGIN" version
