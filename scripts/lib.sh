# Shared by scripts/test.sh and scripts/flakes.sh (sourced, from the
# repository's top): messages, and installing what the tests need.

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
    step "installing $* (apt)"
    if [ -z "$apt_updated" ]; then
        apt-get update
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# Installs each group of test servers that is missing (scripts/deps/*.sh,
# each saying what it installs before it does).
install_test_servers() {
    local deps
    for deps in scripts/deps/*.sh; do
        # shellcheck source=/dev/null
        . "$deps"
    done
}
