#!/usr/bin/env bash
# Builds the tiny guest from source: build.sh OUTPUT_DIR -> OUTPUT_DIR/tiny.elf, an ELF64 PVH
# kernel (XEN_ELFNOTE_PHYS32_ENTRY). Needs clang and ld.lld (the Swift toolchain has both) and
# Xen's public headers (libxen-dev: /usr/include/xen). Nothing it builds is committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh OUTPUT_DIR}"
mkdir -p "$out/include"
xen_headers="${XEN_HEADERS:-/usr/include/xen}"
[ -f "$xen_headers/xen.h" ] || { echo "build.sh: no Xen public headers at $xen_headers (apt-get install libxen-dev)" >&2; exit 1; }
# Only xen/ from the system headers: the guest is freestanding and must not see libc's.
ln -sfn "$xen_headers" "$out/include/xen"
cc="${CLANG:-clang}"
flags=(-target x86_64-unknown-none-elf -ffreestanding -fno-builtin -fno-pic -fno-pie -fno-stack-protector
       -mno-red-zone -mgeneral-regs-only -mcmodel=small -O2 -g0 -Wall -Wextra -Werror -Wno-unused-parameter
       -nostdinc -isystem "$("$cc" -print-resource-dir)/include" -I "$out/include")
"$cc" "${flags[@]}" -c "$here/entry.S" -o "$out/entry.o"
"$cc" "${flags[@]}" -std=c11 -c "$here/guest.c" -o "$out/guest.o"
"${LLD:-ld.lld}" -m elf_x86_64 -nostdlib -static -z max-page-size=4096 -z noexecstack -T "$here/link.ld" -o "$out/tiny.elf" "$out/entry.o" "$out/guest.o"
echo "$out/tiny.elf"
