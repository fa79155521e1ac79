#!/usr/bin/env bash
# Builds a real-VM test guest from one Debian release's packages, without
# installing anything into this machine and without mounting anything:
#
#   apt-get download  the cloud kernel, busybox-static, dropbear-bin,
#                     openssh-server, openssh-sftp-server and the libraries
#                     they depend on
#   dpkg-deb -x       each into a staging tree
#   busybox cpio      the tree as an initramfs (busybox from the package)
#
# The guest brings its own C library and loader, so either suite runs
# under QEMU on any host:
#
#   --suite bookworm  Debian 12: OpenSSH 9.2p1, dropbear 2022.83 (default)
#   --suite trixie    Debian 13: OpenSSH 10.0p1, dropbear 2025.89, kernel
#                     6.12; sshd's PerSourcePenalties on, as shipped
#
# The host's own release is read from the system's apt lists; another
# suite from lists of its own under target/apt/SUITE, fetched with
# `apt-get update` into that directory only (the system's sources, lists
# and packages stay untouched, and no root is needed).
#
# One image holds both servers; the kernel command line picks one at boot
# (vmssh.sshd=openssh|dropbear), can delay the network
# (vmssh.netdelay=SECS) to stand for a slow-booting guest, can install
# root's key only SECS after the SSH server listens (vmssh.keydelay=SECS,
# as cloud-init writes authorized_keys after sshd starts), and can raise
# sshd's log level (vmssh.sshdlog=LEVEL; VERBOSE shows the penalties sshd
# hands out). The guest's init is busybox's, its SSH server is respawned
# when it dies and logs to the serial console.
#
# Output (cached; rebuilt only when this script changes):
#   DIR/vmlinuz        the kernel
#   DIR/initrd.img     the initramfs (uncompressed: under TCG
#                      decompressing costs more than reading)
#   DIR/id_ed25519     root's key (authorized in the guest)
#   DIR/host_key.pub   the guest's host key, for pinning
#   DIR/versions       the servers' and the kernel's package versions
#   DIR/features       the vmssh.* options the guest's init reads
#   DIR/stamp          what the cache was built from
# where DIR is target/vm-image (bookworm) or target/vm-image-trixie.
#
# Usage: scripts/vm-image.sh [--suite bookworm|trixie] [--force]
#        (prints the output directory)
set -euo pipefail

cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/vm-image.sh [--suite bookworm|trixie] [--force]" >&2
    exit 2
}
suite=bookworm
force=
while [ "$#" -gt 0 ]; do
    case "$1" in
        --suite)
            [ "$#" -ge 2 ] || usage
            suite=$2
            shift 2
            ;;
        --suite=*)
            suite=${1#*=}
            shift
            ;;
        --force)
            force=1
            shift
            ;;
        *) usage ;;
    esac
done
case "$suite" in
    bookworm) out="$PWD/target/vm-image" ;;
    trixie) out="$PWD/target/vm-image-$suite" ;;
    *)
        echo "vm-image: unknown suite $suite (bookworm or trixie)" >&2
        exit 2
        ;;
esac
stamp_want="$suite $(sha256sum scripts/vm-image.sh | cut -d' ' -f1)"

if [ -z "$force" ] && [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp_want" ] &&
    [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -f "$out/id_ed25519" ]; then
    echo "$out"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb ssh-keygen; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "vm-image: $tool is needed (Debian: apt, dpkg, openssh-client)" >&2
        exit 1
    fi
done

# How apt reads this suite: the host's release through the system's lists;
# another suite through private sources, lists, cache and an empty dpkg
# status (nothing installed here counts), refreshed by private_update.
apt_opts=()
private=
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ "$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" != "$suite" ]; then
    private="$PWD/target/apt/$suite"
    mkdir -p "$private/lists/partial" "$private/cache/archives/partial" "$private/etc/parts"
    printf 'deb [signed-by=%s] http://deb.debian.org/%s %s main\n' \
        "$keyring" debian "$suite" \
        "$keyring" debian "$suite-updates" \
        "$keyring" debian-security "$suite-security" >"$private/etc/sources.list"
    : >"$private/status"
    apt_opts=(-o "Dir::Etc::SourceList=$private/etc/sources.list"
        -o "Dir::Etc::SourceParts=$private/etc/parts"
        -o "Dir::Etc::Preferences=$private/etc/preferences"
        -o "Dir::Etc::PreferencesParts=$private/etc/parts"
        -o "Dir::State::Lists=$private/lists"
        -o "Dir::State::status=$private/status"
        -o "Dir::Cache=$private/cache"
        -o "APT::Architecture=amd64" -o "APT::Architectures::=amd64"
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
        -o "Debug::NoLocking=1")
fi
private_update() {
    echo "vm-image: apt-get update for $suite (lists in $private)" >&2
    if ! apt-get -q "${apt_opts[@]}" update >&2; then
        echo "vm-image: cannot fetch $suite's package lists (does $keyring hold $suite's keys?)" >&2
        exit 1
    fi
}
if [ -n "$private" ] && ! ls "$private/lists/"*_InRelease >/dev/null 2>&1; then
    private_update
fi

servers=(busybox-static dropbear-bin openssh-server openssh-sftp-server)

# The kernel metapackage names the versioned kernel package.
kernel_package() {
    apt-cache "${apt_opts[@]}" depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1
}

# The libraries of sshd, sftp-server and dropbear: their packages'
# dependencies named lib* (or zlib1g), followed through libraries only.
# PAM's modules stay out (the guest's sshd runs without PAM). The ELF
# check below fails the build if a library is still missing.
library_closure() {
    local -A seen=()
    local todo=("$@") next p
    while [ "${#todo[@]}" -gt 0 ]; do
        next=()
        while read -r p; do
            p=${p%:any}
            case "$p" in
                libpam-*) continue ;;
                lib* | zlib1g) ;;
                *) continue ;;
            esac
            [ -z "${seen[$p]:-}" ] || continue
            seen[$p]=1
            next+=("$p")
        done < <(apt-cache "${apt_opts[@]}" depends --no-recommends --no-suggests \
            --no-conflicts --no-breaks --no-replaces --no-enhances "${todo[@]}" 2>/dev/null |
            sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^<][^ ]*\)$/\2/p')
        todo=(${next[@]+"${next[@]}"})
    done
    printf '%s\n' "${!seen[@]}" | LC_ALL=C sort
}

resolve() {
    kpkg="$(kernel_package)"
    if [ -z "$kpkg" ]; then
        echo "vm-image: apt knows no linux-image-cloud-amd64 in $suite (run apt-get update)" >&2
        exit 1
    fi
    mapfile -t libs < <(library_closure "${servers[@]}")
}
resolve

work="$out/build"
rm -rf "$work"
mkdir -p "$work/debs" "$work/kernel" "$work/root"
debs="$work/debs"

download() {
    # apt-get download writes into the current directory; root's download
    # runs unsandboxed into a directory _apt cannot read, which apt only
    # warns about.
    (cd "$debs" && apt-get "${apt_opts[@]}" download -qq "$@" 2>&1 |
        grep -v "^W: Download is performed unsandboxed" >&2) || true
}
missing_debs() {
    local p
    for p in "$kpkg" "${servers[@]}" "${libs[@]}"; do
        ls "$debs/${p}_"*.deb >/dev/null 2>&1 || echo "$p"
    done
}
echo "vm-image: downloading $suite's $kpkg ${servers[*]} and ${#libs[@]} libraries" >&2
download "$kpkg" "${servers[@]}" "${libs[@]}"
if [ -n "$(missing_debs)" ] && [ -n "$private" ]; then
    # Lists older than the mirror name versions it no longer has.
    private_update
    resolve
    mapfile -t again < <(missing_debs)
    download "${again[@]}"
fi
for p in $(missing_debs); do
    echo "vm-image: could not download $p" >&2
    exit 1
done

root="$work/root"
dpkg-deb -x "$(ls "$debs/${kpkg}_"*.deb | tail -n1)" "$work/kernel"
for p in "${servers[@]}" "${libs[@]}"; do
    dpkg-deb -x "$(ls "$debs/${p}_"*.deb | tail -n1)" "$root"
done
# Since trixie, packages install under /usr only: the top-level
# directories are links into it (as base-files makes them), so that the
# loader is found at /lib64 and busybox at /bin.
for d in bin sbin lib lib64; do
    if [ ! -e "$root/$d" ] && [ -d "$root/usr/$d" ]; then
        ln -s "usr/$d" "$root/$d"
    fi
done
# Documentation, init-system glue and charset converters: no guest use.
rm -rf "$root/usr/share" "$root/etc/init.d" "$root/etc/pam.d" "$root/lib/systemd" \
    "$root/etc/sv" "$root/etc/ufw" "$root/etc/default" "$root/usr/lib/x86_64-linux-gnu/gconv"

bb="$root/bin/busybox"
# The modules are under /lib/modules (bookworm) or /usr/lib/modules.
kbase="$work/kernel"
[ -d "$kbase/lib/modules" ] || kbase="$work/kernel/usr"
kver="$(ls "$kbase/lib/modules")"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

# virtio-net (and virtio-pci before trixie, virtio-rng for entropy) are
# modules in the cloud kernel: copy them with what they depend on,
# uncompressed (trixie's are .ko.xz), then index them.
"$bb" depmod -b "$kbase" "$kver"
kmods="$kbase/lib/modules/$kver"
mkdir -p "$root/lib/modules/$kver"
for m in virtio_net virtio_pci virtio-rng; do
    line="$(grep "/$m\.ko\(\.xz\)\{0,1\}:" "$kmods/modules.dep" || true)"
    if [ -z "$line" ]; then
        if ! grep -q "/$m\.ko\$" "$kmods/modules.builtin"; then
            echo "vm-image: $kver has no module $m, built in or not" >&2
            exit 1
        fi
        continue
    fi
    for f in ${line//:/}; do
        mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
        case "$f" in
            *.xz) "$bb" unxz -c "$kmods/$f" >"$root/lib/modules/$kver/${f%.xz}" ;;
            *) cp "$kmods/$f" "$root/lib/modules/$kver/$f" ;;
        esac
    done
done
cp "$kmods/modules.builtin" "$root/lib/modules/$kver/"
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
bins=(usr/sbin/sshd usr/lib/openssh/sftp-server usr/sbin/dropbear)
# OpenSSH 9.8 and later split sshd: the listener runs sshd-session (and,
# from 10.0, sshd-auth) for each connection.
for b in usr/lib/openssh/sshd-session usr/lib/openssh/sshd-auth; do
    [ ! -e "$root/$b" ] || bins+=("$b")
done
for bin in "${bins[@]}"; do
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
# (bookworm keeps it in /usr/lib/dropbear, trixie in /usr/bin.)
convert="$root/usr/lib/dropbear/dropbearconvert"
[ -e "$convert" ] || convert="$root/usr/bin/dropbearconvert"
"$ld" --library-path "$libpath" "$convert" openssh dropbear \
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
# late: vmssh.netdelay=SECS), before init starts the SSH server (with
# vmssh.sshd=NAME and vmssh.sshdlog=LEVEL kept for /etc/sshd-run). With
# vmssh.keydelay=SECS, root's authorized_keys is taken away until SECS
# after the server listens on port 22.
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
        vmssh.sshdlog=*) echo "${arg#*=}" >/run/vmssh-sshdlog ;;
        vmssh.keydelay=*) keydelay="${arg#*=}" ;;
    esac
done
if [ -n "${keydelay:-}" ]; then
    mv /root/.ssh/authorized_keys /run/vmssh-authorized_keys
    (
        # Listening on port 22 (0016), IPv4 or IPv6: state 0A.
        until grep -q ':0016 [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
            usleep 100000
        done
        echo "vmssh: SSH server listening; root's key in ${keydelay}s"
        sleep "$keydelay"
        cp /run/vmssh-authorized_keys /root/.ssh/authorized_keys.new
        chmod 600 /root/.ssh/authorized_keys.new
        mv /root/.ssh/authorized_keys.new /root/.ssh/authorized_keys
        echo "vmssh: root's key installed"
    ) </dev/null >/dev/console 2>&1 &
fi
# (virtio_pci is built into trixie's kernel.)
modprobe virtio-rng 2>/dev/null
modprobe virtio_pci 2>/dev/null
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
# The SSH server in the foreground, logging to the console. With
# vmssh.sshdlog=LEVEL, sshd logs at LEVEL and each line is prefixed with
# the guest's uptime in seconds.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
level="$(cat /run/vmssh-sshdlog 2>/dev/null)"
case "$(cat /run/vmssh-sshd 2>/dev/null)" in
    dropbear)
        echo "vmssh: starting dropbear" >/dev/console
        exec /usr/sbin/dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22
        ;;
    *)
        echo "vmssh: starting sshd" >/dev/console
        [ -n "$level" ] || exec /usr/sbin/sshd -D -e
        /usr/sbin/sshd -D -e -o "LogLevel=$level" 2>&1 | while IFS= read -r line; do
            read -r up _ </proc/uptime
            echo "[$up] $line"
        done
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
echo "sshd netdelay keydelay sshdlog hostname" >"$out/features"
for p in "$kpkg" "${servers[@]}"; do
    echo "$p $(dpkg-deb -f "$(ls "$debs/${p}_"*.deb | tail -n1)" Version)"
done >"$out/versions"
rm -rf "$work"
echo "$stamp_want" >"$out/stamp"
echo "vm-image: built $(du -h "$out/initrd.img" | cut -f1) initramfs for $kver in $out" >&2
echo "$out"
