"""The CPU a measurement ran on, and Intel AMX: XNNPACK picks its int8 kernels by what the CPU offers.

XNNPACK uses AMX int8 tiles whenever the CPU has them; their 16x64 tiles waste most of the work on
layers of 16-32 channels, so the benchmark also measures a process that is refused AMX
(:func:`deny_amx`), where XNNPACK falls back to its AVX512-VNNI int8 kernels.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def has_amx() -> bool:
    """Whether this is an x86-64 Linux CPU with AMX int8 tiles (which XNNPACK would use)."""
    return os.uname().machine == "x86_64" and " amx_int8" in _cpuinfo()


#: x86 features that decide which int8 kernels XNNPACK picks, best first (/proc/cpuinfo flag, name).
INT8_ISA = (
    ("amx_int8", "AMX"),
    ("avx512_vnni", "AVX512-VNNI"),
    ("avx512f", "AVX-512 without VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx2", "AVX2 (no AVX-512, no VNNI)"),
)


def int8_isa() -> str | None:
    """The best of :data:`INT8_ISA` this CPU offers (``None`` off x86 Linux or with none of them).

    The same CPU model can offer different ones: a virtual machine may hide AVX-512 from its guest, and
    with it XNNPACK's VNNI int8 kernels (an AMD EPYC with AVX512-VNNI ran the zoo CNN's int8 model at 0.5x
    float; the same model name without AVX-512 at 1.6x).
    """
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo().splitlines() if line.startswith("flags")), [])
    return next((name for flag, name in INT8_ISA if flag in flags), None)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it, with the int8 instruction set XNNPACK can use (``"AMD EPYC,
    AVX512-VNNI"``); else the machine type."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            isa = int8_isa()
            return line.split(":", 1)[1].strip() + (f", {isa}" if isa else "")
    return os.uname().machine


def deny_amx() -> bool:
    """Refuse Intel AMX to this process; returns whether it is now refused (checked with the call itself).

    A seccomp filter makes ``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`` fail with EPERM, so
    XNNPACK (which asks for that permission when it starts) uses its AVX512-VNNI kernels instead of AMX.
    Irreversible for the process and its children: call it only in a child process made for the
    purpose, before anything creates an XNNPACK delegate.
    """
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return False
    sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata = 158, 0x1023, 18

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    program = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 5, 0xC000003E),  # AUDIT_ARCH_X86_64, else allow
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jeq, 0, 3, sys_arch_prctl),
        (ld, 0, 0, 16),  # seccomp_data.args[0] (low half)
        (jeq, 0, 1, arch_req_xcomp_perm),
        (ret, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
        (ret, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*i) for i in program])
    prog = SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, None, 0, 0) or libc.prctl(
        pr_set_seccomp, seccomp_mode_filter, ctypes.cast(ctypes.pointer(prog), ctypes.c_void_p), 0, 0
    ):
        return False
    libc.syscall.restype = ctypes.c_long
    refused = libc.syscall(
        ctypes.c_long(sys_arch_prctl), ctypes.c_long(arch_req_xcomp_perm), ctypes.c_long(xfeature_xtiledata)
    )
    return refused != 0
