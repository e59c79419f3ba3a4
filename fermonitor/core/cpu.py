"""What the CPU can do fast, read without torch: the int8 dot-product instructions (VNNI)."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

# AVX512-VNNI (Intel Cascade Lake and later, AMD Zen 4 and later) and AVX-VNNI (Intel Alder Lake
# and later): int8 convolutions at about four times the fp32 rate.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags in Linux's lower-case names; empty where they cannot be read."""
    try:
        if sys.platform.startswith("linux"):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
        elif sys.platform == "darwin":  # Intel Macs; Apple silicon has no x86 flags
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.leaf7_features", "machdep.cpu.features"],
                                 capture_output=True, text=True, timeout=5).stdout
            names = {word.lower().replace(".", "_") for word in out.split()}
            return frozenset(names | {"avx512_vnni"} if "avx512vnni" in names else names)
    except (OSError, subprocess.SubprocessError):
        pass
    return frozenset()


def cpu_has_vnni() -> bool:
    """Whether the CPU has int8 dot-product instructions (then the int8 model is the fast one)."""
    return any(flag in cpu_flags() for flag in VNNI_FLAGS)
