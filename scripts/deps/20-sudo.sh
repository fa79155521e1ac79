# Sourced by scripts/lib.sh (which defines have and apt_install).
# sudo, for the provisioning tests of `sudo` steps (tests/provision.rs):
# the test user is root, whom Debian's default sudoers lets run anything.
have sudo || apt_install sudo
