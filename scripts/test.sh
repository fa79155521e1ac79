#!/usr/bin/env bash
# The test command: formatting, lints, the whole test suite against real
# OpenSSH and dropbear servers, doc tests and docs.
#
# On a fresh Debian/Ubuntu machine, run as root: the servers are installed
# through apt when missing. Without root, install them first:
#   apt-get install openssh-server openssh-client dropbear-bin
#
# Interop tests never skip here: VMSSH_REQUIRE_SERVERS=1 makes a missing
# server a test failure.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

have() { [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; }

missing=()
have /usr/sbin/sshd || missing+=(openssh-server)
have /usr/sbin/dropbear || missing+=(dropbear-bin)
# ssh-keygen, ssh-agent and ssh-add come with openssh-client.
if ! have ssh-keygen || ! have ssh-agent || ! have ssh-add; then
    missing+=(openssh-client)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: the tests need ${missing[*]}, which are not installed, and this is not root." >&2
        echo "Install them first:  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: the tests need ${missing[*]}, and apt-get is not available to install them." >&2
        exit 1
    fi
    step "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    # The packages' own services are not needed: each test starts its own
    # server on a free loopback port.
fi

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
