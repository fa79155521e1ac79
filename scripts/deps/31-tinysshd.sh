# Sourced by scripts/test.sh (which defines have and apt_install).
# tinysshd for the interop tests: tests/support/tinysshd.rs runs one per
# connection, as inetd would, on a loopback port of its own.
if ! have /usr/sbin/tinysshd; then
    apt_install tinysshd
    # Where systemd runs, the package enables a socket unit on port 22;
    # the tests need no system service.
    if [ -d /run/systemd/system ]; then
        systemctl disable --now tinysshd.socket >/dev/null 2>&1 || true
    fi
fi
