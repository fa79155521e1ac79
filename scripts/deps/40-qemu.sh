# Sourced by scripts/lib.sh (which defines step, have, die and apt_install).
# QEMU and the real-VM test guest (tests/vm_*.rs, `vmssh demo --qemu N`).
#
# Installs qemu-system-x86 (nothing else goes into this machine) and builds
# the guests with scripts/vm-image.sh from Debian's packages: Debian 12's
# (bookworm) cached under target/vm-image, Debian 13's (trixie: OpenSSH 10,
# the newest dropbear) under target/vm-image-trixie. Quick when built.
#
# On these machines qemu-utils comes from bookworm-backports, and bookworm's
# own qemu-system-x86 would remove it: qemu-system-x86 is taken from
# bookworm-backports at qemu-utils' version, through a private apt sources
# file (the system's sources stay untouched), and apt never removes anything
# (--no-remove).
if ! have qemu-system-x86_64; then
    [ "$(id -u)" -eq 0 ] && have apt-get ||
        die "the real-VM tests need QEMU (Debian: qemu-system-x86), which is not installed, and this is not root with apt-get. Install it first."
    qemu_apt=()
    qemu_pkg=qemu-system-x86
    if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ]; then
        qemu_sources=/var/lib/vmssh/apt/backports.list
        mkdir -p "$(dirname "$qemu_sources")"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" \
            >"$qemu_sources"
        step "apt: bookworm-backports index (private sources file $qemu_sources)"
        # Only the private source is fetched; the system's lists stay.
        apt-get -q -o Dir::Etc::SourceList="$qemu_sources" \
            -o Dir::Etc::SourceParts=/nonexistent -o APT::Get::List-Cleanup=0 update
        qemu_apt=(-o Dir::Etc::SourceList="$qemu_sources" -t bookworm-backports)
        qemu_utils="$(dpkg-query -W -f='${Status} ${Version}' qemu-utils 2>/dev/null || true)"
        case "$qemu_utils" in
            "install ok installed "*) qemu_pkg="qemu-system-x86=${qemu_utils##* }" ;;
        esac
    fi
    step "installing $qemu_pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-remove --no-install-recommends \
        "${qemu_apt[@]}" "$qemu_pkg" ||
        die "cannot install $qemu_pkg (needed by the real-VM tests)"
    have qemu-system-x86_64 || die "$qemu_pkg installed no qemu-system-x86_64"
    unset qemu_apt qemu_pkg qemu_sources qemu_utils
fi

# The host's own release comes from apt's current package lists: refresh
# them once if they are too old to download from. (The other release reads
# lists of its own, which vm-image.sh refreshes itself.)
for vm_suite in bookworm trixie; do
    if ! ./scripts/vm-image.sh --suite "$vm_suite" >/dev/null; then
        if [ "$(id -u)" -eq 0 ] && [ -z "${apt_updated:-}" ]; then
            step "apt-get update (for the VM image's packages)"
            apt-get update
            apt_updated=1
            ./scripts/vm-image.sh --suite "$vm_suite" >/dev/null ||
                die "cannot build the $vm_suite VM image (scripts/vm-image.sh --suite $vm_suite)"
        else
            die "cannot build the $vm_suite VM image (scripts/vm-image.sh --suite $vm_suite)"
        fi
    fi
done
unset vm_suite
