#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every stage
# (formatting, lints, the test suite against real servers, doc tests, docs,
# the library's package, a no-op rebuild) and reports every failing stage
# at the end: a flaky test never hides a broken doc build.
#
# What it installs when missing, on a Debian/Ubuntu machine, as root (each
# scripts/deps/*.sh installs one group and says so before it does):
#   - OpenSSH's sshd, sftp-server and clients, and dropbear   (apt)
#   - sudo                                                    (apt)
#   - asyncssh, pinned, in a virtual environment under target/ (PyPI)
#   - kubernetes-validate, pinned, in a virtual environment under target/,
#     which checks docs/sharding.md's Kubernetes Job          (PyPI)
#   - tinysshd, with its system service left disabled         (apt)
#   - QEMU, and the guest images built from Debian 12 and 13 packages
#     into target/vm-image and target/vm-image-trixie          (apt)
#   - GNU parallel, which docs/sharding.md shards with        (apt)
# Without root, install them first (each file says what it needs).
#
# Interop tests never skip here: VMSSH_REQUIRE_SERVERS=1 makes the tests
# package's build script fail the build when a test server is missing,
# instead of marking its tests ignored.
set -euo pipefail

cd "$(dirname "$0")/.."

# step, have, die, apt_install; install_test_servers.
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

install_test_servers

export VMSSH_REQUIRE_SERVERS=1

# run NAME CMD...: one stage; its failure is recorded, and the next stage runs.
failed=()
run() {
    local name=$1
    shift
    step "$name"
    if ! "$@"; then
        failed+=("$name")
        echo "==> $name: FAILED" >&2
    fi
}

tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
    else
        echo "(cargo-nextest not installed: falling back to cargo test)"
        cargo test --workspace --no-fail-fast
    fi
}

# The library's package holds its sources, README, changelog and licences,
# nothing else, and builds on its own (`cargo package` compiles it).
package() {
    local list unexpected
    list=$(cargo package -p vmssh --list --allow-dirty) || return 1
    unexpected=$(grep -vE '^(src/.*\.rs|README\.md|CHANGELOG\.md|LICENSE-(MIT|APACHE)|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|\.cargo_vcs_info\.json)$' <<<"$list" || true)
    if [ -n "$unexpected" ]; then
        echo "the vmssh package would ship more than the library:" >&2
        echo "$unexpected" >&2
        return 1
    fi
    cargo package -p vmssh --allow-dirty --quiet
}

# After a build, building again with nothing changed compiles nothing.
noop_build() {
    local out
    cargo build --workspace --all-targets --quiet || return 1
    out=$(cargo build --workspace --all-targets 2>&1) || {
        echo "$out" >&2
        return 1
    }
    if grep -E '^\s*(Compiling|Running) ' <<<"$out"; then
        echo "a second build with nothing changed compiled the above" >&2
        return 1
    fi
}

run "cargo fmt --check" cargo fmt --all -- --check
run "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
run "tests" tests
run "doc tests" cargo test --workspace --doc
run "docs" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
run "the library's package" package
run "a second build compiles nothing" noop_build

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\n==> FAILED stages:\n' >&2
    printf '    %s\n' "${failed[@]}" >&2
    exit 1
fi
step "all checks passed"
