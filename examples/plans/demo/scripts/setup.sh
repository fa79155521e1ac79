#!/bin/sh
# The demo's script step: uploaded to each VM, run there, then removed.
set -eu
echo "setting up ${HOSTNAME:-$(uname -n)} as $(id -un)"
for pkg in ${PACKAGES:-nginx curl jq}; do
    echo "installing $pkg (pretend)"
    sleep 0.15
done
echo "warning: this is a demo, nothing was installed" >&2
echo "setup done"
