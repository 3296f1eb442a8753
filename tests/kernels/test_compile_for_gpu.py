"""Every kernel compiles for Hopper (sm_90) and Ampere (sm_80) down to a cubin, without a GPU: triton's compiler
and ptxas run on the CPU. The interpreter accepts programs a GPU build refuses (types, shapes of `tl.dot`), so
this is the check that the kernels the interpreter tests would also build for the devices they are for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

COMPILE = r'''
import sys, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from optiplan.kernels import flash_attention, flash_decoding, weight_only_gemm

POINTERS = {"MASK": "*u8", "Q_START": "*i32", "Q_LENS": "*i32", "K_START": "*i32", "K_LENS": "*i32",
            "BLOCK_TABLE": "*i32", "PART_O": "*fp32", "PART_LSE": "*fp32", "ACC": "*fp32"}
FLOATS = {"sm_scale", "softcap"}

def compile_one(fn, dtype, const, qweight="*u8", warps=4, stages=3, cc=90):
    sig = {}
    for name in fn.arg_names:
        if name in const:
            sig[name] = "constexpr"
        elif name == "QW":
            sig[name] = qweight
        elif name in POINTERS:
            sig[name] = POINTERS[name]
        elif name in FLOATS:
            sig[name] = "fp32"
        elif name[0].isupper() and not name.endswith("BUCKET") and not (fn.__name__ == "_wo_gemm" and name in "MNK"):
            sig[name] = "*" + dtype
        else:
            sig[name] = "i32"
    triton.compile(ASTSource(fn, sig, const), target=GPUTarget("cuda", cc, 32),
                   options={"num_warps": warps, "num_stages": stages})

full = dict(CAUSAL=True, HAS_WINDOW=True, HAS_MASK=True, HAS_SINKS=True, HAS_SOFTCAP=True)
plain = dict(CAUSAL=True, HAS_WINDOW=False, HAS_MASK=False, HAS_SINKS=False, HAS_SOFTCAP=False)
cases = [
    (flash_attention._flash_fwd, "bf16", dict(GROUP=4, BLOCK_D=128, PRECISION="tf32", UPCAST=False, BLOCK_M=128,
                                             BLOCK_N=64, WHOLE_TILES=True, **full), {"warps": 8}),
    (flash_attention._flash_fwd, "fp32", dict(GROUP=1, BLOCK_D=64, PRECISION="ieee", UPCAST=False, BLOCK_M=64,
                                             BLOCK_N=64, WHOLE_TILES=False, **plain), {}),
    (flash_attention._flash_fwd, "fp16", dict(GROUP=8, BLOCK_D=256, PRECISION="tf32", UPCAST=False, BLOCK_M=64,
                                             BLOCK_N=64, WHOLE_TILES=True, **plain), {}),
    (flash_decoding._decode_split, "bf16", dict(PAGED=False, GROUP=4, BLOCK_G=16, BLOCK_D=128, HAS_WINDOW=True,
                                               HAS_MASK=True, HAS_SOFTCAP=True, PRECISION="tf32", UPCAST=False,
                                               BLOCK_N=64), {}),
    (flash_decoding._decode_split, "fp16", dict(PAGED=True, GROUP=8, BLOCK_G=16, BLOCK_D=128, HAS_WINDOW=False,
                                               HAS_MASK=False, HAS_SOFTCAP=False, PRECISION="tf32", UPCAST=False,
                                               BLOCK_N=128), {}),
    (flash_decoding._decode_merge, "bf16", dict(HAS_SINKS=True, BLOCK_S=8, BLOCK_D=128), {}),
    (weight_only_gemm._wo_gemm, "bf16", dict(BITS=4, HAS_BIAS=True, PRECISION="tf32", UPCAST=False, BLOCK_M=16,
                                           BLOCK_N=64, BLOCK_K=32, SPLIT_K=8, GROUP_M=8, SPLIT_NIBBLES=True, REDUCE=False), {}),
    (weight_only_gemm._wo_gemm, "bf16", dict(BITS=8, HAS_BIAS=False, PRECISION="tf32", UPCAST=False, BLOCK_M=128,
                                           BLOCK_N=128, BLOCK_K=32, SPLIT_K=1, GROUP_M=8, SPLIT_NIBBLES=False, REDUCE=False),
     {"qweight": "*i8", "warps": 8}),
    (weight_only_gemm._wo_gemm, "fp16", dict(BITS=4, HAS_BIAS=False, PRECISION="tf32", UPCAST=False, BLOCK_M=128,
                                           BLOCK_N=128, BLOCK_K=64, SPLIT_K=1, GROUP_M=8, SPLIT_NIBBLES=False, REDUCE=False), {"warps": 8}),
    (weight_only_gemm._wo_gemm, "bf16", dict(BITS=4, HAS_BIAS=False, PRECISION="tf32", UPCAST=False, BLOCK_M=16,
                                           BLOCK_N=128, BLOCK_K=128, SPLIT_K=4, GROUP_M=8, SPLIT_NIBBLES=True, REDUCE=False), {}),
    # the decode path's multiply-and-sum tiles (REDUCE): int4 at one row, int8 at two
    (weight_only_gemm._wo_gemm, "bf16", dict(BITS=4, HAS_BIAS=True, PRECISION="tf32", UPCAST=False, BLOCK_M=1,
                                           BLOCK_N=256, BLOCK_K=64, SPLIT_K=8, GROUP_M=1, SPLIT_NIBBLES=True,
                                           REDUCE=True), {}),
    (weight_only_gemm._wo_gemm, "fp16", dict(BITS=8, HAS_BIAS=False, PRECISION="tf32", UPCAST=False, BLOCK_M=2,
                                           BLOCK_N=128, BLOCK_K=64, SPLIT_K=4, GROUP_M=1, SPLIT_NIBBLES=True,
                                           REDUCE=True), {"qweight": "*i8"}),
]
cc = int(sys.argv[1])
for fn, dtype, const, opts in cases:
    compile_one(fn, dtype, const, cc=cc, **opts)
    print("compiled", fn.__name__, dtype, "sm_%d" % cc, flush=True)
'''


@pytest.mark.slow
@pytest.mark.parametrize("capability", [90, 80])
def test_every_kernel_compiles_for_the_gpu(capability):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    done = subprocess.run([sys.executable, "-c", COMPILE, str(capability)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.count("compiled") == 12
