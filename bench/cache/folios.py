#!/usr/bin/env python3
"""How the page cache holds files: the sizes of the folios their cached pages
are in. Needs root (/proc/kpageflags).

    bench/cache/folios.py FILE...      prints one line: folios per MiB cached
                                       and how many folios of each size

Why it matters: sendfile hands the socket one piece per folio page run, so
the same bytes cost more CPU to send from 4 KiB folios than from 64 KiB ones,
and how a server writes (or reads back) its cache files decides which it gets
(docs/benchmarks.md). Only pages already cached are looked at (mincore), so
reading the layout does not change it.
"""
import collections
import ctypes
import ctypes.util
import mmap
import os
import struct
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")
KPF_COMPOUND_TAIL = 1 << 16
PFN_MASK = (1 << 55) - 1

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]


def folio_sizes(path, pagemap, kpageflags):
    """Counter of folio size (bytes) -> folios, for the cached pages of path."""
    sizes = collections.Counter()
    size = os.path.getsize(path)
    if size == 0:
        return sizes
    pages = (size + PAGE - 1) // PAGE
    # A private mapping is writable for ctypes; reading it maps the page
    # cache's own pages, which is what pagemap then names.
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        address = _address_of(m)
        cached = (ctypes.c_ubyte * pages)()
        if libc.mincore(address, size, cached) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed", path)
        run = 0
        for i in range(pages):
            if not cached[i] & 1:
                if run:
                    sizes[run * PAGE] += 1
                run = 0
                continue
            m[i * PAGE]  # maps the cached page (no I/O: it is cached)
            pagemap.seek((address // PAGE + i) * 8)
            pfn = struct.unpack("<Q", pagemap.read(8))[0] & PFN_MASK
            kpageflags.seek(pfn * 8)
            flags = struct.unpack("<Q", kpageflags.read(8))[0]
            if flags & KPF_COMPOUND_TAIL and run:
                run += 1
                continue
            if run:
                sizes[run * PAGE] += 1
            run = 1
        if run:
            sizes[run * PAGE] += 1
    return sizes


def _address_of(mapping):
    """Start address of an mmap object's mapping."""
    holder = ctypes.c_char.from_buffer(mapping)
    address = ctypes.addressof(holder)
    del holder  # the buffer export must end before the mapping closes
    return address


def main():
    files = [p for p in sys.argv[1:] if os.path.isfile(p)]
    if not files:
        print("no files")
        return
    total = collections.Counter()
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap, \
            open("/proc/kpageflags", "rb", buffering=0) as kpageflags:
        for path in files:
            total += folio_sizes(path, pagemap, kpageflags)
    cached = sum(size * count for size, count in total.items())
    if cached == 0:
        print(f"{len(files)} files, nothing cached")
        return
    per_mib = sum(total.values()) / (cached / (1 << 20))
    layout = ", ".join(f"{size // 1024} KiB: {count}" for size, count in sorted(total.items()))
    print(f"{per_mib:.1f} folios per MiB over {cached / (1 << 20):.0f} MiB cached in {len(files)} files ({layout})")


if __name__ == "__main__":
    main()
