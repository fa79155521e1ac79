#!/usr/bin/env bash
# The test command: installs what the tests need, then formatting, lints,
# the whole test suite against real servers, doc tests and docs.
#
# On a fresh Debian/Ubuntu machine, run as root: each scripts/deps/*.sh
# installs one group of test servers (through apt, pip, ...) when missing.
# Without root, install them first (each file says what it needs).
#
# Interop tests never skip here: VMSSH_REQUIRE_SERVERS=1 makes build.rs
# fail the build when a test server is missing, instead of marking its
# tests ignored.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

have() { [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; }

die() {
    echo "error: $*" >&2
    exit 1
}

# apt_install PKG...: installs Debian packages (no recommends), running
# `apt-get update` once per run. Fails with a clear message where it cannot.
apt_updated=
apt_install() {
    [ "$#" -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "the tests need $*, which are not installed, and this is not root. Install them first:  sudo apt-get install -y $*"
    fi
    have apt-get || die "the tests need $*, and apt-get is not available to install them."
    step "installing $*"
    if [ -z "$apt_updated" ]; then
        apt-get update
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

for deps in scripts/deps/*.sh; do
    # shellcheck source=/dev/null
    . "$deps"
done

export VMSSH_REQUIRE_SERVERS=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --all-features -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-features --no-fail-fast
else
    echo "(cargo-nextest not installed: falling back to cargo test)"
    cargo test --all-features --no-fail-fast
fi

step "doc tests"
cargo test --doc --all-features

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "all checks passed"
