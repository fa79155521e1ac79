# Sourced by scripts/lib.sh (which defines have and apt_install).
# tinysshd for the interop tests: tests/support/tinysshd.rs runs one per
# connection, as inetd would, on a loopback port of its own.
if ! have /usr/sbin/tinysshd; then
    apt_install tinysshd
fi
# The package enables a socket unit on port 22 (a link under
# /etc/systemd, even where systemd does not run); the tests need no system
# service. `systemctl disable` removes the link with or without systemd.
if [ -e /etc/systemd/system/sockets.target.wants/tinysshd.socket ] && [ "$(id -u)" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now tinysshd.socket >/dev/null 2>&1 || true
    else
        systemctl disable tinysshd.socket >/dev/null 2>&1 ||
            rm -f /etc/systemd/system/sockets.target.wants/tinysshd.socket
    fi
fi
