# Sourced by scripts/lib.sh (which defines have, step, die and apt_install).
# asyncssh's SSH server (PyPI) for the interop tests, in a virtual
# environment under target/ (tests/support/asyncssh.rs runs it from there).
# The version is pinned; `installed` records it once asyncssh imports.
asyncssh_version=2.24.1
asyncssh_venv=target/asyncssh
if [ "$(cat "$asyncssh_venv/installed" 2>/dev/null)" != "$asyncssh_version" ]; then
    if ! have python3 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install python3 python3-venv
    fi
    step "installing asyncssh $asyncssh_version from PyPI into $asyncssh_venv"
    rm -rf "$asyncssh_venv"
    python3 -m venv "$asyncssh_venv" ||
        die "cannot create a Python virtual environment in $asyncssh_venv"
    "$asyncssh_venv/bin/pip" install --quiet --disable-pip-version-check \
        "asyncssh==$asyncssh_version" ||
        die "cannot install asyncssh $asyncssh_version from PyPI into $asyncssh_venv"
    # (cryptography warns that asyncssh still offers DSA: not ours to fix.)
    PYTHONWARNINGS=ignore "$asyncssh_venv/bin/python3" -c 'import asyncssh' ||
        die "asyncssh does not import in $asyncssh_venv"
    echo "$asyncssh_version" >"$asyncssh_venv/installed"
fi
unset asyncssh_version asyncssh_venv
