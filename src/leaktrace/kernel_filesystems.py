"""Filesystems the kernel makes up (proc, sysfs...): root's access() says "writable" there,
and yet no file can be created in them."""

from __future__ import annotations

import os

KERNEL_FILESYSTEMS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs",
                                "securityfs", "configfs", "pstore", "bpf", "devpts",
                                "mqueue", "fusectl", "binfmt_misc", "efivarfs"})


def kernel_filesystem(directory: str) -> str | None:
    """The type of the kernel filesystem `directory` is on (proc, sysfs...), else None."""
    path = os.path.realpath(directory)
    best, fs_type = "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(" - ", 1)
                mount_point = fields[0].split(" ")[4].replace("\\040", " ")
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best) and len(fields) == 2:
                    best, fs_type = mount_point, fields[1].split(" ")[0]
    except (OSError, IndexError):
        return None
    return fs_type if fs_type in KERNEL_FILESYSTEMS else None
