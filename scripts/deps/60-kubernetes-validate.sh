# Sourced by scripts/lib.sh (which defines have, step, die and apt_install).
# kubernetes-validate (PyPI), which checks docs/sharding.md's Kubernetes Job
# against Kubernetes' own schemas (bundled in the package: no network, no
# cluster), in a virtual environment under target/ (tests/cli_shard.rs runs
# it from there). The version is pinned; `installed` records it once the
# tool runs.
kubernetes_validate_version=1.37.0
kubernetes_validate_venv=target/kubernetes-validate
if [ "$(cat "$kubernetes_validate_venv/installed" 2>/dev/null)" != "$kubernetes_validate_version" ]; then
    if ! have python3 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install python3 python3-venv
    fi
    step "installing kubernetes-validate $kubernetes_validate_version from PyPI into $kubernetes_validate_venv"
    rm -rf "$kubernetes_validate_venv"
    python3 -m venv "$kubernetes_validate_venv" ||
        die "cannot create a Python virtual environment in $kubernetes_validate_venv"
    "$kubernetes_validate_venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$kubernetes_validate_version" ||
        die "cannot install kubernetes-validate $kubernetes_validate_version from PyPI into $kubernetes_validate_venv"
    "$kubernetes_validate_venv/bin/kubernetes-validate" --version >/dev/null ||
        die "kubernetes-validate does not run in $kubernetes_validate_venv"
    echo "$kubernetes_validate_version" >"$kubernetes_validate_venv/installed"
fi
unset kubernetes_validate_version kubernetes_validate_venv
