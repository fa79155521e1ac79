# Sourced by scripts/lib.sh (which defines have and apt_install).
# OpenSSH's sshd with sftp-server, its clients (ssh, sftp, scp, ssh-keygen,
# ssh-agent, ssh-add) and dropbear. Their own services are not needed: each
# test starts its own server on a free loopback port.
missing=()
have /usr/sbin/sshd || missing+=(openssh-server)
have /usr/sbin/dropbear || missing+=(dropbear-bin)
for bin in ssh sftp scp ssh-keygen ssh-agent ssh-add; do
    if ! have "$bin"; then
        missing+=(openssh-client)
        break
    fi
done
apt_install "${missing[@]}"
unset missing bin
