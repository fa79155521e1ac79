#!/usr/bin/env bash
# Builds the real-VM test guest from Debian's packages, without installing
# anything into this machine and without mounting anything:
#
#   apt-get download  the cloud kernel, busybox-static, dropbear-bin,
#                     openssh-server, openssh-sftp-server and their libraries
#   dpkg-deb -x       each into a staging tree
#   busybox cpio      the tree as an initramfs (busybox from the package)
#
# One image holds both servers; the kernel command line picks one at boot
# (vmssh.sshd=openssh|dropbear) and can delay the network
# (vmssh.netdelay=SECS) to stand for a slow-booting guest. The guest's init
# is busybox's, and its sshd is respawned when it dies.
#
# Output (cached; rebuilt only when this script changes):
#   target/vm-image/vmlinuz       the kernel
#   target/vm-image/initrd.img    the initramfs (uncompressed: under TCG
#                                 decompressing costs more than reading)
#   target/vm-image/id_ed25519    root's key (authorized in the guest)
#   target/vm-image/host_key.pub  the guest's host key, for pinning
#   target/vm-image/stamp         what the cache was built from
#
# Usage: scripts/vm-image.sh [--force]    (prints the output directory)
set -euo pipefail

cd "$(dirname "$0")/.."
out="$PWD/target/vm-image"
stamp_want="$(sha256sum scripts/vm-image.sh | cut -d' ' -f1)"

if [ "${1:-}" != "--force" ] && [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp_want" ] &&
    [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -f "$out/id_ed25519" ]; then
    echo "$out"
    exit 0
fi

for tool in apt-get dpkg-deb ssh-keygen; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "vm-image: $tool is needed (Debian: apt, dpkg, openssh-client)" >&2
        exit 1
    fi
done

# Libraries of sshd, sftp-server and dropbear (checked below: a missing one
# fails the build, it does not make a guest whose sshd never starts).
libs=(libc6 libcrypt1 libwrap0 libaudit1 libcap-ng0 libpam0g libsystemd0 libcap2
    libgcrypt20 libgpg-error0 liblzma5 libzstd1 liblz4-1 libselinux1 libpcre2-8-0
    libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
    libssl3 zlib1g libnsl2 libtirpc3 libtomcrypt1 libtommath1 libgmp10)
servers=(busybox-static dropbear-bin openssh-server openssh-sftp-server)

work="$out/build"
rm -rf "$work"
mkdir -p "$work/debs" "$work/kernel" "$work/root"
debs="$work/debs"

# The kernel metapackage names the versioned kernel package.
kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)"
if [ -z "$kpkg" ]; then
    echo "vm-image: apt knows no linux-image-cloud-amd64 (run apt-get update)" >&2
    exit 1
fi

echo "vm-image: downloading $kpkg ${servers[*]} and ${#libs[@]} libraries" >&2
# apt-get download writes into the current directory; root's download runs
# unsandboxed into a directory _apt cannot read, which apt only warns about.
(cd "$debs" && apt-get download -qq "$kpkg" "${servers[@]}" "${libs[@]}" 2>&1 |
    grep -v "^W: Download is performed unsandboxed" >&2) || true
for p in "$kpkg" "${servers[@]}" "${libs[@]}"; do
    if ! ls "$debs/${p}_"*.deb >/dev/null 2>&1; then
        echo "vm-image: could not download $p" >&2
        exit 1
    fi
done

root="$work/root"
dpkg-deb -x "$(ls "$debs/${kpkg}_"*.deb | tail -n1)" "$work/kernel"
for p in "${servers[@]}" "${libs[@]}"; do
    dpkg-deb -x "$(ls "$debs/${p}_"*.deb | tail -n1)" "$root"
done
# Documentation, init-system glue and charset converters: no guest use.
rm -rf "$root/usr/share" "$root/etc/init.d" "$root/etc/pam.d" "$root/lib/systemd" \
    "$root/etc/sv" "$root/etc/ufw" "$root/etc/default" "$root/usr/lib/x86_64-linux-gnu/gconv"

bb="$root/bin/busybox"
kver="$(ls "$work/kernel/lib/modules")"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

# virtio-net and virtio-pci are modules in the cloud kernel: copy those two
# (and virtio-rng, for entropy) with what they depend on, then index them.
"$bb" depmod -b "$work/kernel" "$kver"
kmods="$work/kernel/lib/modules/$kver"
mkdir -p "$root/lib/modules/$kver"
for m in virtio_net virtio_pci virtio-rng; do
    line="$(grep "/$m.ko:" "$kmods/modules.dep")"
    for f in ${line//:/}; do
        mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
        cp "$kmods/$f" "$root/lib/modules/$kver/$f"
    done
done
"$bb" depmod -b "$root" "$kver"

# Busybox applets as symlinks, where no package put a real binary.
while read -r applet; do
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || {
        mkdir -p "$root/$(dirname "$applet")"
        ln -s /bin/busybox "$root/$applet"
    }
done < <("$bb" --list-full)
ln -sf /bin/busybox "$root/init"
# dropbear looks for sftp-server here.
ln -sf /usr/lib/openssh/sftp-server "$root/usr/lib/sftp-server"

# Every binary the guest runs must find its libraries in the image.
ld="$root/lib64/ld-linux-x86-64.so.2"
libpath="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu"
for bin in usr/sbin/sshd usr/lib/openssh/sftp-server usr/sbin/dropbear; do
    if "$ld" --library-path "$libpath" --list "$root/$bin" | grep -q "not found"; then
        echo "vm-image: $bin lacks libraries in the image:" >&2
        "$ld" --library-path "$libpath" --list "$root/$bin" | grep "not found" >&2
        exit 1
    fi
done

# Keys, made here so that tests can pin the host key and log in as root.
rm -f "$work/id_ed25519" "$work/id_ed25519.pub" "$work/host_key" "$work/host_key.pub"
ssh-keygen -q -t ed25519 -N '' -C vmssh-vm-client -f "$work/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C vmssh-vm-host -f "$work/host_key"
mkdir -p "$root/etc/ssh" "$root/etc/dropbear" "$root/root/.ssh" "$root/run/sshd" \
    "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/var/log" "$root/var/run"
chmod 700 "$root/root" "$root/root/.ssh"
chmod 1777 "$root/tmp"
cp "$work/host_key" "$root/etc/ssh/ssh_host_ed25519_key"
chmod 600 "$root/etc/ssh/ssh_host_ed25519_key"
cp "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
chmod 600 "$root/root/.ssh/authorized_keys"
# dropbear keeps its host key in its own format: convert with the packaged
# dropbearconvert, run through the image's own loader and libraries.
"$ld" --library-path "$libpath" "$root/usr/lib/dropbear/dropbearconvert" openssh dropbear \
    "$work/host_key" "$root/etc/dropbear/dropbear_ed25519_host_key" >/dev/null 2>&1

cat >"$root/etc/passwd" <<'EOF'
root:*:0:0:root:/root:/bin/sh
sshd:*:100:65534:sshd:/run/sshd:/bin/false
nobody:*:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo /bin/sh >"$root/etc/shells"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
cat >"$root/etc/ssh/sshd_config" <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF

cat >"$root/etc/inittab" <<'EOF'
::sysinit:/etc/rc
::respawn:/etc/sshd-run
::shutdown:/bin/umount -a -r
EOF
cat >"$root/etc/rc" <<'EOF'
#!/bin/sh
# Guest boot: kernel file systems, modules, then the network (optionally
# late: vmssh.netdelay=SECS), before init starts the SSH server.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        vmssh.hostname=*) hostname "${arg#*=}" ;;
        vmssh.netdelay=*) netdelay="${arg#*=}" ;;
        vmssh.sshd=*) echo "${arg#*=}" >/run/vmssh-sshd ;;
    esac
done
modprobe virtio-rng 2>/dev/null
modprobe virtio_pci
modprobe virtio_net
ip link set lo up
if [ -n "${netdelay:-}" ]; then
    echo "vmssh: network comes up in ${netdelay}s" >/dev/console
    sleep "$netdelay"
fi
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "vmssh: network up" >/dev/console
EOF
cat >"$root/etc/sshd-run" <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$(cat /run/vmssh-sshd 2>/dev/null)" in
    dropbear)
        echo "vmssh: starting dropbear" >/dev/console
        exec /usr/sbin/dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22
        ;;
    *)
        echo "vmssh: starting sshd" >/dev/console
        exec /usr/sbin/sshd -D -e
        ;;
esac
EOF
chmod 755 "$root/etc/rc" "$root/etc/sshd-run"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) \
    >"$work/initrd.img"

# Publish atomically-ish: files first, the stamp last.
for f in vmlinuz initrd.img id_ed25519 id_ed25519.pub host_key.pub; do
    mv -f "$work/$f" "$out/$f"
done
echo "$kver" >"$out/kernel-version"
rm -rf "$work"
echo "$stamp_want" >"$out/stamp"
echo "vm-image: built $(du -h "$out/initrd.img" | cut -f1) initramfs for $kver in $out" >&2
echo "$out"
