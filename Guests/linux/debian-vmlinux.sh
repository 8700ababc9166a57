#!/usr/bin/env bash
# Fetches an unmodified Linux kernel built by Debian, as an ELF vmlinux with its symbol table:
# debian-vmlinux.sh OUTPUT_DIR -> OUTPUT_DIR/vmlinux. Debian's kernels are built with
# CONFIG_PVH=y, so the image has XEN_ELFNOTE_PHYS32_ENTRY; the symbol table (from the -dbg
# package, about 850 MB to download) lets `xv run` find Linux's inline VMCALLs
# (xen_hypercall_hvm and friends). Nothing it fetches is committed. Needs apt-get (Debian).
set -euo pipefail
out="${1:?usage: debian-vmlinux.sh OUTPUT_DIR}"
mkdir -p "$out"
cd "$out"
# The running distribution's default kernel flavour, e.g. linux-image-6.1.0-57-amd64.
package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$package" ] || { apt-get update -qq && package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'); }
[ -n "$package" ] || { echo "debian-vmlinux.sh: no linux-image-amd64 in the package lists" >&2; exit 1; }
version=${package#linux-image-}
if [ ! -f vmlinux ]; then
    [ -f "$package-dbg"_*.deb ] 2>/dev/null || apt-get download "$package-dbg"
    deb=$(ls "$package-dbg"_*.deb | head -n 1)
    dpkg-deb --fsys-tarfile "$deb" | tar -x "./usr/lib/debug/boot/vmlinux-$version"
    mv "usr/lib/debug/boot/vmlinux-$version" vmlinux
    rm -rf usr
fi
echo "$out/vmlinux ($package)"
