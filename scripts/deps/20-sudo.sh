# Sourced by scripts/lib.sh (which defines have and apt_install).
# sudo, for the provisioning tests of `sudo` steps (tests/provision.rs):
# the test user is root, whom Debian's default sudoers lets run anything;
# and for sudo with a password (tests/sudo.rs), which creates users and
# rules of its own in /etc/sudoers.d (checked with visudo, from sudo).
have sudo || apt_install sudo
