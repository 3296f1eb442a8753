"""Number formats: what a dtype name means, how many bytes it takes, and which peak it runs at.

A *weight format* is how weights are stored (bf16, fp8, int8, int4 with groups); the *compute dtype*
is the tensor-core rate the matmuls run at. int8/int4 mean weight-only quantization with 16-bit
activations (dequantized on the fly) unless activations are quantized too (W8A8), which is the
usual meaning of fp8 and the explicit `--activations int8` of int8. fp4 is NVFP4 (W4A4 on Blackwell's fp4 rate);
mxfp4 is weight-only too: the engines' MXFP4 kernels on Ampere and Hopper (Marlin, Triton) dequantize to 16 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

# Canonical names, and the spellings users type (torch's included). Exact matches only.
_ALIASES: dict[str, str] = {
    "bf16": "bf16", "bfloat16": "bf16", "torch.bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "torch.float16": "fp16", "torch.half": "fp16",
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "torch.float32": "fp32", "torch.float": "fp32",
    "fp8": "fp8", "float8": "fp8", "fp8_e4m3": "fp8", "float8_e4m3fn": "fp8", "torch.float8_e4m3fn": "fp8",
    "e4m3": "fp8", "fp8_e5m2": "fp8", "float8_e5m2": "fp8", "torch.float8_e5m2": "fp8",
    "int8": "int8", "torch.int8": "int8", "qint8": "int8", "w8a16": "int8",
    "int4": "int4", "torch.int4": "int4", "uint4": "int4", "torch.uint4": "int4", "w4a16": "int4",
    "nf4": "nf4",
    "fp4": "fp4", "nvfp4": "fp4",
    "mxfp4": "mxfp4",
}

BITS: dict[str, int] = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4, "nf4": 4, "fp4": 4,
                        "mxfp4": 4}

# Formats whose weights are stored quantized with a scale (and maybe a zero point) per group.
QUANTIZED = frozenset({"fp8", "int8", "int4", "nf4", "fp4", "mxfp4"})

# Group size defaults: per-output-channel scales for int8 and fp8 (one scale per row, shown as
# group 0 = whole row), 128 for int4 (GPTQ/AWQ default), 64 for nf4 (bitsandbytes), 16 for
# NVFP4 (one fp8 scale per 16 values), 32 for MXFP4 (the OCP microscaling format: one 8-bit power-of-two scale,
# E8M0, per 32 values; gpt-oss's experts are stored so).
DEFAULT_GROUP_SIZE: dict[str, int] = {"int8": 0, "fp8": 0, "int4": 128, "nf4": 64, "fp4": 16, "mxfp4": 32}


class DtypeError(ValueError):
    """An unknown dtype name."""


def canonical(name: str) -> str:
    """Return the canonical dtype name (`bf16`, `fp8`, ...) for any accepted spelling."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        known = ", ".join(sorted({v for v in _ALIASES.values()}))
        raise DtypeError(f"unknown dtype '{name}'; known: {known} (torch spellings such as torch.bfloat16 work too)")
    return _ALIASES[key]


def bytes_per_element(dtype: str) -> float:
    """Bytes one element takes in a plain (unquantized) tensor of this dtype."""
    return BITS[canonical(dtype)] / 8


@dataclass(frozen=True)
class WeightFormat:
    """How the quantizable weights (the linear layers of the blocks) are stored.

    `scale_bits` and `zero_bits` are per group of `group_size` weights; group 0 means one scale per
    output row (per-channel), whose overhead is 16 bits over a whole row and thus negligible but
    still counted from the row length.
    """

    dtype: str
    group_size: int = 0
    scale_bits: int = 16
    zero_bits: int = 0
    # a whole-model file (GGUF): a mix of block types, stated as the mean bits per weight of the blocks' matmul
    # weights, and the token embedding and output head quantized too (None: kept at 16 bits); an engine that
    # quantizes the head with the other linear layers (gpt-fast) sets output_bits alone
    file_bits: float | None = None
    embedding_bits: float | None = None
    output_bits: float | None = None

    @property
    def bits(self) -> int:
        return BITS[self.dtype]

    @property
    def quantized(self) -> bool:
        return self.dtype in QUANTIZED

    def bits_per_weight(self, row_length: int) -> float:
        """Average stored bits per weight, scale and zero-point overhead included."""
        if self.file_bits is not None:
            return self.file_bits
        if not self.quantized:
            return float(self.bits)
        group = self.group_size if self.group_size > 0 else max(row_length, 1)
        return self.bits + (self.scale_bits + self.zero_bits) / group


def weight_format(dtype: str, group_size: int | None = None) -> WeightFormat:
    """The usual storage of a weight dtype: int4 g128 with fp16 scales and 4-bit zero points
    (GPTQ/AWQ asymmetric), nf4 g64 with an fp32 absmax per block (bitsandbytes, before double
    quantization), fp4 g16 with fp8 scales (NVFP4), mxfp4 g32 with E8M0 scales (4.25 bits a weight), int8/fp8 with
    one fp16/fp32 scale per row."""
    d = canonical(dtype)
    if group_size is not None and group_size < 0:
        raise DtypeError(f"group size must be 0 (per channel) or positive, got {group_size}")
    g = DEFAULT_GROUP_SIZE.get(d, 0) if group_size is None else group_size
    if d == "int4":
        return WeightFormat(d, g, scale_bits=16, zero_bits=4)
    if d == "nf4":
        return WeightFormat(d, g, scale_bits=32, zero_bits=0)
    if d in ("fp4", "mxfp4"):
        return WeightFormat(d, g, scale_bits=8, zero_bits=0)
    if d in ("int8", "fp8"):
        return WeightFormat(d, g, scale_bits=16 if d == "int8" else 32, zero_bits=0)
    return WeightFormat(d, 0)


def compute_dtype(weight_dtype: str, activation_dtype: str | None, default_16bit: str) -> str:
    """The tensor-core rate the matmuls run at.

    Weight-only formats dequantize to 16-bit and run at the 16-bit rate; W8A8 int8 and fp8 run
    at the 8-bit rate; fp32 runs at fp32.
    """
    w = canonical(weight_dtype)
    if activation_dtype is not None:
        a = canonical(activation_dtype)
        if a in ("fp8", "int8", "fp4"):
            return a
        return a if a in ("fp32", "bf16", "fp16") else default_16bit
    if w == "fp8":
        return "fp8"
    if w in ("fp32", "bf16", "fp16"):
        return w
    return default_16bit
