"""Weight quantization and KV-cache quantization. Quality losses are WikiText-2 perplexity increases
from the papers named, relative to the 16-bit model."""

from __future__ import annotations

from dataclasses import dataclass

from ...catalog.engines import (
    device_fact,
    engine_kernel,
    engine_storage,
    engine_weight_only,
    fp8_weight_only_engines,
    kv_fp8_storage,
)
from ...catalog.kernels import triton_gemm
from ...catalog.served import experts_split_whole, published_checkpoint, served_checkpoint_dtype
from ...catalog.workloads import serves_instruct
from ..quality import QualityLoss, published_loss
from ..state import PlanState
from . import REGISTRY, Applied, Combines, Context, Option, Technique, register, static_reason

WEIGHTS = "weight-format"

# parameters `optiplan apply -t` takes for the optimizers below
KEEP_HEAD = ("keep_lm_head", Option(bool, "leave lm_head unquantized"))
BACKEND_AO_QUANTO = ("backend", Option(str, "quantization library", choices=("torchao", "quanto")))
# optiplan's packed layers and Triton weight-only GEMM: CUDA (CPU only under TRITON_INTERPRET=1, for tests)
TRITON_KERNEL = ("kernel", Option(str, "matmul kernel: optiplan's Triton weight-only GEMM", choices=("triton",)))
KV_OPTIONS = (("backend", Option(str, "transformers' cache backend", choices=("quanto", "hqq", "fp8"))),
              ("residual_length", Option(int, "recent tokens kept unquantized", low=0, high=1 << 20)),
              ("group_size", Option(int, "quantization group along the head dim", choices=(32, 64, 128))))
KV = "kv-format"
# every quantized KV cache is transformers' QuantizedCache, one cache kind whatever its backend
KV_RUNTIME = {"transformers": Combines(cache="quantized")}

# Llama-2-7B, WikiText-2 perplexity: FP16 5.47; INT4 g128 RTN 5.73; GPTQ 5.69; AWQ 5.60 (AWQ paper, Table 4).
_AWQ_SRC = "AWQ (arXiv 2306.00978), Llama-2-7B WikiText-2: fp16 5.47 -> AWQ int4 g128 5.60 (+2.4%)"
_GPTQ_SRC = "AWQ paper's GPTQ baseline, Llama-2-7B WikiText-2: fp16 5.47 -> GPTQ int4 g128 5.69 (+4.0%)"
_RTN_SRC = "AWQ paper's RTN baseline, Llama-2-7B WikiText-2: fp16 5.47 -> int4 g128 round-to-nearest 5.73 (+4.8%)"


@dataclass(frozen=True)
class Published:
    """A step's quality loss for the model at hand, from published perplexities by family and size
    (plan/quality.py). An engine that stores the format in its own file type (llama.cpp's GGUF Q4_K_M) is judged by
    that type's figures ("gguf-q4_k_m"); `otherwise` holds the loss and its source where no figure is published."""

    method: str | None
    dtype: str
    otherwise: tuple[float, str]
    budgeted_as: str = ""  # where the figure is another method's, what the step takes it as (NF4: GPTQ's)

    def _find(self, ctx: Context) -> QualityLoss:
        storage = engine_storage(ctx.workload.engine, self.dtype)
        method = f"gguf-{storage['format'].lower()}" if storage else self.method
        found = published_loss(method, ctx.spec) if method else None
        if found is not None and self.budgeted_as and not storage:
            return QualityLoss(found.pct, f"{self.budgeted_as}: {found.source}")
        return found or QualityLoss(*self.otherwise)

    def loss(self, ctx: Context) -> float:
        return self._find(ctx).pct

    def source(self, ctx: Context) -> str:
        return self._find(ctx).source


def _published(method: str | None, dtype: str, pct: float, source: str, budgeted_as: str = "") -> dict:
    """The Technique fields of a published, per-model quality loss (`budgeted_as`: another method's figure, taken
    for this one)."""
    found = Published(method, dtype, (pct, source), budgeted_as)
    return {"quality_loss_pct": found.loss, "quality_source": found.source}


def _weights(dtype: str, group: int | None = None, activations: str | None = None, own_gemm: bool = False,
             method: str | None = None):
    """`own_gemm`: optiplan's Triton weight-only GEMM where it measured faster on this GPU (`catalog.kernels`). An
    engine that stores the format in its own file type (llama.cpp's GGUF) keeps that layout, not `group`. `method`:
    how int4 weights are made (awq, gptq), which picks the engine's GEMM where it has one per method."""
    def transform(state: PlanState, ctx: Context) -> PlanState:
        ours = own_gemm and triton_gemm(ctx.hw, ctx.workload.engine, dtype) is not None
        layout = None if engine_storage(ctx.workload.engine, dtype) else group
        return state.with_(weight_dtype=dtype, group_size=layout, activations=activations,
                           weight_kernel="triton" if ours else None, weight_method=method)
    return transform


def _gemm_params(dtype: str, base: dict):
    def params(ctx: Context) -> dict:
        storage = engine_storage(ctx.workload.engine, dtype)
        if storage:  # the engine's own file (llama.cpp's GGUF type), not the technique's layout
            return {"bits": base["bits"], "file_type": storage["format"]}
        ours = triton_gemm(ctx.hw, ctx.workload.engine, dtype)
        if ours is None:
            return dict(base)
        return {**base, "kernel": "triton",
                "measured": f"{ours.gemm[dtype]:.0%} of HBM at M = 1: {ours.source}"}
    return params


# llama.cpp's cache types for an int8 and an int4 cache: ggml's blocks of 32 values with one fp16 scale (QK8_0, QK4_0)
LLAMA_CPP_KV = {"int8": "q8_0", "int4": "q4_0"}


def _kv_int_params(ctx: Context, dtype: str) -> dict:
    """An integer cache's format as the engine stores it: transformers' groups of 64 with a scale and a zero point,
    llama.cpp's ggml blocks of 32 with a scale (the same bits a value either way, `analytic.kvcache.kv_bits`)."""
    if ctx.workload.engine == "llama.cpp":
        return {"dtype": dtype, "format": LLAMA_CPP_KV[dtype], "group_size": 32}
    return {"dtype": dtype, "group_size": 64}


def _weight_only_fp8(ctx: Context) -> bool:
    """transformers applies fp8 weights weight-only (quanto); serving engines run W8A8 fp8, or weight-only where the
    device has no fp8 rate and the engine reads them with a 16-bit kernel of its own (vLLM's FP8 Marlin on an A100),
    which the setup finds from the engine's profile (`engines.engine_activations`), scaled as the engine's fp8 is."""
    return ctx.workload.engine == "transformers"


def _fp8_check(ctx: Context) -> str | None:
    """fp8 weights need fp8 tensor cores, unless the engine reads them weight-only (FP8 Marlin, W8A16: vLLM and TGI on
    Ampere); transformers' quanto path is kept to devices with an fp8 rate. Then `_served_in_4bit`'s refusals."""
    engine, hw = ctx.workload.engine, ctx.hw
    if not hw.features.fp8 and (engine == "transformers" or engine_weight_only(engine, "fp8", hw) is None):
        floor = (engine_kernel(engine, "fp8").get("weight_only") or {}).get("min_compute_capability")
        reader = (f"{engine} reads fp8 weights weight-only (FP8 Marlin, W8A16) from compute capability {floor:.1f} on "
                  f"CUDA; {hw.id} has {hw.features.compute_capability or hw.features.backend}") if floor else \
            f"{engine} has no weight-only fp8 kernel (FP8 Marlin, W8A16: {', '.join(fp8_weight_only_engines())})"
        return f"{hw.id} has no fp8 (fp8 tensor cores need compute capability 8.9 or newer), and {reader}"
    return _served_in_4bit(ctx)


def _fp8_params(ctx: Context) -> dict:
    """How the fp8 weights are scaled: the published checkpoint's own scheme where the engine serves one (the catalog's
    `scales`), else the engine's own fp8 quantization of the 16-bit checkpoint (its profile's `fp8_scales`);
    transformers quantizes weight-only (quanto qfloat8, a scale per output channel)."""
    if _weight_only_fp8(ctx):
        return {"format": "e4m3", "scales": "per-channel weights"}
    engine = ctx.workload.engine
    if checkpoint := published_checkpoint(ctx.spec.name, "fp8", engine, serves_instruct(ctx.workload), ctx.hw):
        return {"format": "e4m3", "scales": checkpoint["scales"], "checkpoint": checkpoint["hub_id"]}
    return {"format": "e4m3", "scales": device_fact(engine, ctx.hw, "fp8_scales")
            or "per-channel weights, dynamic per-token activations"}


def whole_experts(state: PlanState, ctx: Context, tp: int, expert_tp: int) -> int:
    """The expert-parallel size of a layout that slices the routed experts over `expert_tp` devices: 1, or all of
    them where the published block-fp8 checkpoint the plan serves cannot be sliced so (its experts' columns per device
    not whole blocks): the engine then runs them whole over those devices, as the configs set it
    (`served.experts_split_whole`), and the plan is priced so."""
    whole = state.weight_dtype == "fp8" and experts_split_whole(ctx.spec, ctx.workload.engine,
                                                               serves_instruct(ctx.workload), tp, expert_tp)
    return expert_tp if whole else 1


def _fp8_weights(state: PlanState, ctx: Context) -> PlanState:
    # fp8 weights without activations named compute at the fp8 rate (W8A8): a published fp8 checkpoint's baseline
    fp8 = state.with_(weight_dtype="fp8", group_size=None,
                      activations=state.default_16bit if _weight_only_fp8(ctx) else None)
    # on a tensor-parallel layout already (a serving engine's baseline over several GPUs), a block-fp8 checkpoint's
    # experts that do not slice over it run whole, as `parallel`'s layouts set them where they come after
    if fp8.tp > 1 and fp8.ep == 1 and fp8.attention_dp == 1:
        fp8 = fp8.with_(ep=whole_experts(fp8, ctx, fp8.tp, fp8.tp))
    return fp8


def _served_in_4bit(ctx: Context) -> str | None:
    """Every other weight format refused for a model served in its published MXFP4 checkpoint (gpt-oss on a GPU): its
    routed experts, nearly all of its weights, are 4-bit already, and another format would re-quantize them. Under
    transformers every weight format refused for a mixture of experts: transformers 5 holds its experts as fused 3-D
    tensors, which the libraries optiplan apply quantizes with (torchao, optimum-quanto, gptqmodel, bitsandbytes) leave
    in full precision, quantizing linear layers (`Workspace.refuse_fused_experts`, which apply's optimizers run)."""
    if ctx.workload.engine == "transformers" and ctx.spec.moe is not None:
        return (f"transformers holds {ctx.spec.name}'s experts as fused 3-D tensors, which the weight-quantization "
                "libraries it runs leave in full precision (they quantize linear layers): most of its weights")
    if served_checkpoint_dtype(ctx.spec, ctx.hw, ctx.workload.engine) == "mxfp4":
        return (f"{ctx.spec.name} is served in its published MXFP4 checkpoint on {ctx.hw.id}: its routed experts, "
                "nearly all of its weights, are 4-bit already, and another weight format would re-quantize them")
    return None


def _served_in_8bit(ctx: Context) -> str | None:
    """int8 weights refused for a model served in its published 8-bit format (DeepSeek-V3's fp8 on a GPU with an fp8
    rate): they save no memory over it and would be made by re-quantizing a quantized checkpoint. (fp8 weights there
    are the baseline: the search finds they change nothing.) A 4-bit checkpoint refuses them too (`_served_in_4bit`)."""
    if why := _served_in_4bit(ctx):
        return why
    if fmt := served_checkpoint_dtype(ctx.spec, ctx.hw, ctx.workload.engine):
        return (f"{ctx.spec.name} is served in its published {fmt} checkpoint on {ctx.hw.id} already: int8 weights "
                "save no memory over it and would re-quantize a quantized checkpoint")
    return None


def _w8a8_int8_check(ctx: Context) -> str | None:
    """W8A8 int8 refused where the engine runs W8A8 fp8 on a device whose fp8 rate is at least its int8 rate (H100,
    H200, B200, MI300X, L40S: the datasheets' rates are equal): both read 8-bit weights and multiply 8-bit
    activations, so int8 brings nothing fp8 does not, for more quality loss. Whatever separates them there is the
    engines' kernels, and the int8 one is the weaker path: on ROCm vLLM runs it through Triton's scaled_mm (AITER's
    only with VLLM_ROCM_USE_AITER=1), which AITER's beat by 11-22% in throughput on 4 MI300X (vllm-project/vllm#15433)
    and which ROCm builds did not dispatch to at all for a while (#12282, #14397); our int8 share is the device's
    default, where fp8's on MI3xx is the measured rocm-skinny-fp8. A device with twice the int8 rate (GeForce Ada and
    Blackwell: fp8 with fp32 accumulation at half rate) keeps it, as does an engine that runs fp8 weight-only."""
    if why := _served_in_8bit(ctx):
        return why
    fp8 = REGISTRY.get("weight-fp8")
    int8_rate, fp8_rate = ctx.hw.peak_tflops.get("int8"), ctx.hw.peak_tflops.get("fp8")
    if fp8 is None or _weight_only_fp8(ctx) or not int8_rate or not fp8_rate or fp8_rate < int8_rate:
        return None
    if static_reason(fp8, ctx) is not None:  # fp8 not offered here (the engine, the workload's choice)
        return None
    ours = REGISTRY["weight-w8a8-int8"]
    return (f"weight-fp8 does what it does on {ctx.hw.id}: 8-bit weights and activations at the same tensor-core "
            f"rate (fp8 {fp8_rate:g} TFLOPS, int8 {int8_rate:g} TOPS), for less quality loss ({fp8.loss(ctx):g}% "
            f"against {ours.loss(ctx):g}%)")


def _kv_applied(function: str) -> Applied:
    """The KV-cache optimizer `function`: it exists to shrink the cache, and takes the cache's parameters."""
    return Applied(f"kv_cache:{function}", aim=("cache_bytes", "lower"), options=KV_OPTIONS)


def _caches_keys(ctx: Context) -> str | None:
    """Refused for a pure state-space model (Mamba, RWKV): it has no attention layer; and under transformers for a
    model with sliding-window or chunked layers, whose QuantizedCache takes full-attention layers only."""
    if ctx.spec.layer_mixers and not ctx.spec.attention_layers:
        return (f"{ctx.spec.name} has no attention layer: "
                "its cache is recurrent state, not keys and values, and KV quantization leaves the state at 16 bits")
    spec = ctx.spec
    if ctx.workload.engine == "transformers" and (kind := spec.windowed_cache_layers):
        return (f"transformers' QuantizedCache takes full-attention layers only (cache_utils: \"`QuantizedCache` is "
                f"only supported for models with only full attention layers\"), and {spec.name} has {kind}")
    return None


def _kv_fp8_check(ctx: Context) -> str | None:
    """fp8 tensor cores, or an engine that stores the cache in fp8 and dequantizes it in its attention kernel on this
    GPU (`kv_fp8_storage` in its profile: Ampere for vLLM, SGLang, TGI and TensorRT-LLM)."""
    if reason := _caches_keys(ctx):
        return reason
    hw = ctx.hw
    if hw.features.fp8:
        return None
    storage = kv_fp8_storage(ctx.workload.engine)
    cc = float(hw.features.compute_capability or 0)
    if storage and hw.features.backend == "cuda" and cc >= storage["min_compute_capability"]:
        return None
    if storage and hw.features.backend == "cuda":
        return (f"{ctx.workload.engine} stores an fp8 cache from compute capability {storage['min_compute_capability']}; "
                f"{hw.id} has {hw.features.compute_capability or '?'}")
    if hw.features.backend != "cuda":
        return (f"{hw.id} is a {hw.features.backend} device: an fp8 cache is modelled on CUDA GPUs only (fp8 tensor cores, "
                f"or an engine that stores it and dequantizes it in its attention kernel)")
    return f"{hw.id} has no fp8 (fp8 tensor cores need compute capability 8.9 or newer)"


def _kv(dtype: str):
    def transform(state: PlanState, ctx: Context) -> PlanState:
        return state.with_(kv_dtype=dtype)
    return transform


register(
    Technique(
        id="weight-int8", engines=("vllm", "tgi", "transformers", "llama.cpp"),
        name="int8 weight-only quantization (W8A16)", family="weight quantization", group=WEIGHTS,
        summary="Weights in int8 with one scale per output channel, dequantized to 16 bits in the matmul.",
        transform=_weights("int8", own_gemm=True), check=_served_in_8bit, packages=("torchao",), quality_risk="low",
        **_published(None, "int8", 0.1, "LLM.int8() (arXiv 2208.07339) and torchao int8 weight-only: no measurable "
                                        "perplexity change at 7B+; 0.1% budgeted"),
        params=_gemm_params("int8", {"bits": 8, "scheme": "per-channel symmetric", "activations": "16-bit"}),
        apply=Applied("quantize:int8_weight_only", changes_model=True, aim=("weights_bytes", "lower"),
                      options=(BACKEND_AO_QUANTO, KEEP_HEAD, TRITON_KERNEL))),
    Technique(
        id="weight-w8a8-int8", engines=("vllm", "sglang", "transformers"),
        name="int8 weights and activations (SmoothQuant W8A8)", family="weight quantization",
        group=WEIGHTS, summary="int8 weights and dynamically quantized int8 activations on int8 tensor cores.",
        transform=_weights("int8", activations="int8"), hardware=("int8-tensor-cores",), check=_w8a8_int8_check,
        packages=("torchao",), data="calibration", quality_risk="low", quality_loss_pct=0.5,
        quality_source="SmoothQuant (arXiv 2211.10438): W8A8 within 0.5% of fp16 on OPT/BLOOM/Llama",
        params=lambda ctx: {"bits": 8, "activations": "int8 dynamic per token"},
        apply=Applied("quantize:int8_dynamic", changes_model=True, aim=("weights_bytes", "lower"),
                      options=(KEEP_HEAD,))),
    Technique(
        id="weight-fp8", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="fp8 weights (W8A8 fp8 in serving engines, weight-only in transformers)", family="weight quantization",
        group=WEIGHTS,
        summary="e4m3 weights. Serving engines run fp8 activations too, on fp8 tensor cores (W8A8), scaled as the "
                "checkpoint they serve is (a published one's own scheme) or as they quantize the 16-bit one; on a GPU "
                "without them vLLM and TGI read the weights weight-only (FP8 Marlin, W8A16); transformers keeps "
                "16-bit activations (optimum-quanto qfloat8 weight-only).",
        transform=_fp8_weights, hardware=("gpu",), packages=("optimum-quanto",), quality_risk="low",
        check=_fp8_check,
        quality_loss_pct=0.3,
        quality_source="Micikevicius et al., FP8 Formats for Deep Learning (arXiv 2209.05433) and vLLM fp8 docs: "
                       "within 0.3% of 16-bit on Llama-class models",
        params=_fp8_params,
        unchanged="the published checkpoint is already fp8 and runs as it is on this device",
        apply=Applied("quantize:fp8_weights", changes_model=True, aim=("weights_bytes", "lower"))),
    Technique(
        id="weight-int4-awq", engines=("vllm", "sglang", "tgi", "trtllm"),
        name="int4 weights, AWQ (group 128)", family="weight quantization", group=WEIGHTS,
        summary="Activation-aware int4 weights, group size 128, dequantized in a fused kernel (Marlin/AWQ).",
        transform=_weights("int4", 128, method="awq"), hardware=("cuda-or-rocm",), packages=("autoawq",),
        check=_served_in_4bit,
        data="calibration", quality_risk="medium", **_published("awq-int4-g128", "int4", 2.4, _AWQ_SRC),
        params=lambda ctx: {"bits": 4, "group_size": 128, "method": "awq"}),
    Technique(
        id="weight-int4-gptq", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="int4 weights, GPTQ (group 128)", family="weight quantization", group=WEIGHTS,
        summary="Second-order (Hessian-aware) int4 rounding with calibration data, group size 128.",
        transform=_weights("int4", 128, method="gptq"), packages=("optimum", "gptqmodel"), data="calibration",
        check=_served_in_4bit,
        quality_risk="medium", **_published("gptq-int4-g128", "int4", 4.0, _GPTQ_SRC),
        params=lambda ctx: {"bits": 4, "group_size": 128, "method": "gptq"},
        apply=Applied("quantize:gptq", devices=("cuda",), changes_model=True, aim=("weights_bytes", "lower"),
                      options=(("group_size", Option(int, "int4 group", choices=(32, 64, 128))),))),
    Technique(
        id="weight-int4", engines=("transformers", "llama.cpp"),
        name="int4 weight-only, round to nearest (group 128)", family="weight quantization",
        group=WEIGHTS, summary="int4 weights with per-group scales and zero points, no calibration (GGUF in llama.cpp; "
                                   "optimum-quanto in transformers, torchao's kernel on CUDA where mslk is installed).",
        transform=_weights("int4", 128, own_gemm=True), packages=("optimum-quanto",), quality_risk="medium",
        check=_served_in_4bit,
        **_published("rtn-int4-g128", "int4", 4.8, _RTN_SRC),
        params=_gemm_params("int4", {"bits": 4, "group_size": 128, "method": "rtn"}),
        apply=Applied("quantize:int4_weight_only", changes_model=True, aim=("weights_bytes", "lower"),
                      options=(("group_size", Option(int, "int4 group along the input dim", choices=(32, 64, 128, 256))),
                               BACKEND_AO_QUANTO, KEEP_HEAD, TRITON_KERNEL))),
    Technique(
        id="weight-nf4", engines=("vllm", "tgi", "transformers"),
        name="NF4 weights (bitsandbytes)", family="weight quantization", group=WEIGHTS,
        summary="4-bit NormalFloat weights with an absmax per 64 values, dequantized on the fly.",
        transform=_weights("nf4", 64), hardware=("cuda",), packages=("bitsandbytes",), check=_served_in_4bit,
        quality_risk="medium",
        # no NF4 perplexity is in profiles/quality.yaml: the model's GPTQ figure is taken (an uncalibrated format is
        # not planned as better than a calibrated one of the same width), else GPTQ's Llama-2-7B one
        **_published("gptq-int4-g128", "nf4", 4.0,
                     "QLoRA (arXiv 2305.14314): NF4 beats int4/fp4 round-to-nearest; budgeted like GPTQ int4 (+4%)",
                     budgeted_as="NF4 budgeted as GPTQ int4's published figure for this model (no NF4 perplexity "
                                 "is published here; QLoRA, arXiv 2305.14314: NF4 beats round-to-nearest int4)"),
        params=lambda ctx: {"bits": 4, "group_size": 64, "method": "nf4"},
        apply=Applied("quantize:nf4", devices=("cuda",), changes_model=True, aim=("weights_bytes", "lower"))),
    Technique(
        id="weight-fp4", engines=("vllm", "sglang", "trtllm"),
        name="NVFP4 weights and activations", family="weight quantization", group=WEIGHTS,
        summary="4-bit floating point with an fp8 scale per 16 values on Blackwell tensor cores.",
        transform=_weights("fp4", 16, activations="fp4"), hardware=("fp4",), packages=("modelopt",),
        check=_served_in_4bit,
        data="calibration", quality_risk="medium", quality_loss_pct=2.0,
        quality_source="NVIDIA TensorRT Model Optimizer NVFP4 results: about 1-2% accuracy change on Llama-3 70B",
        params=lambda ctx: {"format": "nvfp4", "group_size": 16}),
    Technique(
        id="kv-fp8", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="fp8 KV cache", family="kv-cache quantization", group=KV,
        summary="Keys and values stored in e4m3 with a scale per tensor: half the cache of 16 bits.",
        transform=_kv("fp8"), after=("sliding-window-sinks",), check=_kv_fp8_check,
        quality_risk="low", quality_loss_pct=0.1,
        quality_source="vLLM fp8 KV-cache docs and KIVI (arXiv 2402.02750): 8-bit caches are near-lossless",
        params=lambda ctx: {"dtype": "fp8_e4m3"},
        apply=_kv_applied("kv_fp8"), combines=KV_RUNTIME),
    Technique(
        id="kv-int8", engines=("transformers", "llama.cpp"),
        name="int8 KV cache", family="kv-cache quantization", group=KV,
        summary="Keys and values in int8 with a scale and zero point per 64 values (transformers' hqq cache backend; "
                "llama.cpp's q8_0: one 16-bit scale per 32, the same 8.5 bits).",
        transform=_kv("int8"), after=("sliding-window-sinks",), check=_caches_keys,
        packages=("hqq",), quality_risk="low", quality_loss_pct=0.1,
        quality_source="KIVI (arXiv 2402.02750): 8-bit KV caches are indistinguishable from 16-bit",
        params=lambda ctx: _kv_int_params(ctx, "int8"),
        apply=_kv_applied("kv_int8"), combines=KV_RUNTIME),
    Technique(
        id="kv-int4", engines=("transformers", "llama.cpp"),
        name="int4 KV cache", family="kv-cache quantization", group=KV,
        summary="Keys and values in int4 with a scale and zero point per 64 values (llama.cpp's q4_0: one 16-bit "
                "scale per 32, the same 4.5 bits).",
        transform=_kv("int4"), after=("sliding-window-sinks",), check=_caches_keys,
        packages=("optimum-quanto",), quality_risk="low", quality_loss_pct=0.5,
        quality_source="KIVI (arXiv 2402.02750): even 2-bit caches keep near-identical quality; 0.5% budgeted at 4 bits",
        params=lambda ctx: _kv_int_params(ctx, "int4"),
        apply=_kv_applied("kv_int4"), combines=KV_RUNTIME),
    family="quantization")
