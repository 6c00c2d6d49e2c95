#!/usr/bin/env bash
# Installs the load tests' baseline: networked-aframe 0.14.3's published package (for server/socketio-server.js)
# and the two dependencies that server needs, into load-tests/baseline/node_modules (git-ignored). The package's
# own dependency list names a git-hosted module a plain `npm install` cannot fetch, so the package is unpacked
# from `npm pack` instead. Also writes socketio-server-raised-cap.js: the same server with its room cap of 50
# read from NAF_MAX_OCCUPANTS, for rooms larger than the stock server allows.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --loglevel=error
if [ ! -f node_modules/networked-aframe/server/socketio-server.js ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent networked-aframe@0.14.3 >/dev/null)
    mkdir -p node_modules/networked-aframe
    tar -xzf "$tmp"/networked-aframe-0.14.3.tgz -C node_modules/networked-aframe --strip-components=1
    rm -rf "$tmp"
fi
sed -e 's/^const maxOccupantsInRoom = 50;$/const maxOccupantsInRoom = Number(process.env.NAF_MAX_OCCUPANTS || 50);/' \
    -e 's#path.resolve(__dirname, "..", "examples")#path.resolve(__dirname, "node_modules/networked-aframe/examples")#' \
    node_modules/networked-aframe/server/socketio-server.js > socketio-server-raised-cap.js
grep -q 'NAF_MAX_OCCUPANTS' socketio-server-raised-cap.js
