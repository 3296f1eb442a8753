"""The `optiplan` command line: thin click commands that build a request model and call one library
function. Every error prints one line and an exit code (2 bad input, 3 nothing meets the workload, 70 an internal
error); `--debug` shows the traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

# The CLI uses no pydantic plugins; looking them up scans every installed package's entry points
# (~60 ms here), a third of a `profile --json` run. A user who wants plugins sets this variable.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import click  # noqa: E402

from ... import __version__, profiles  # noqa: E402
from .common import (  # noqa: E402
    DEFAULT_HARDWARE,
    DEFAULT_MODEL,
    EngineName,
    PlanEngineName,
    emit,
    friendly,
    plan_overrides,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="optiplan")
@click.option("--verbose", "-v", is_flag=True, help="Show the third-party libraries' own warnings and logs.")
def main(verbose: bool) -> None:
    """optiplan: what to do to run a Transformer language model fast, small and cheap on given
    hardware, how much it gains, and proof that it did."""
    if verbose:  # worker processes inherit it
        os.environ["OPTIPLAN_VERBOSE"] = "1"


class SizesType(click.ParamType):
    """Positive batch sizes, comma-separated."""

    name = "N,N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            sizes = tuple(int(size) for size in value.split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of batch sizes", param, ctx)
        if min(sizes) < 1:
            self.fail(f"{value!r}: a batch size is at least 1", param, ctx)
        return sizes


class ConcurrencyType(click.ParamType):
    """A positive number of requests, or 'max'."""

    name = "N|max"

    def convert(self, value, param, ctx):
        if value == "max" or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'max'", param, ctx)


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--hardware", "-H", default=DEFAULT_HARDWARE, show_default=True,
              help="Catalog device id or alias, 'local', or a hardware YAML file.")
@click.option("--gpus", "--devices", "num_devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Devices in total (tensor x pipeline parallel).")
@click.option("--tp", "tensor_parallel", type=int, default=None,
              help="Tensor-parallel size [default: devices / pp; an engine that splits layers over devices "
                   "(llama.cpp, transformers) runs one pipeline stage per device].")
@click.option("--pp", "pipeline_parallel", type=int, default=1, show_default=True, help="Pipeline-parallel size.")
@click.option("--attention-dp", "attention_data_parallel", type=int, default=1, show_default=True,
              help="Attention data-parallel groups (of --tp devices each) for a MoE model: its experts split "
                   "whole with --ep, else sliced over every device (SGLang's --enable-dp-attention).")
@click.option("--ep", "expert_parallel", type=int, default=1, show_default=True,
              help="Split a MoE model's experts whole over this many devices (all devices of a stage).")
@click.option("--dtype", default=None,
              help="Weights: bf16, fp16, fp32, fp8, int8, int4, nf4, fp4 (NVFP4), mxfp4 (torch spellings too). "
                   "int8/int4/mxfp4 are weight-only with 16-bit activations unless --activations says otherwise. "
                   "[default: the published checkpoint's format where the device runs it (gpt-oss's MXFP4 experts, "
                   "DeepSeek-V3's fp8), else bf16 (fp16 on a device without bf16)]")
@click.option("--activations", default=None, help="Quantized activations: int8 or fp8 (W8A8).")
@click.option("--kv-dtype", default=None,
              help="KV-cache dtype [default: 16-bit (fp32 with --dtype fp32); --activations int8/fp8 leave it "
                   "16-bit].")
@click.option("--group-size", type=int, default=None, help="Quantization group size (0 = per channel).")
@click.option("--gguf-type", default=None,
              help="The GGUF file llama.cpp reads the weights from: Q4_0 or Q4_K_M for --dtype int4, Q8_0 for int8 "
                   "[default: Q4_K_M, Q8_0].")
@click.option("--batch", "-b", type=click.IntRange(min=1), default=1, show_default=True, help="Concurrent sequences.")
@click.option("--context", "-c", type=click.IntRange(min=1), default=None,
              help="Tokens in each sequence's KV cache at the decode step [default: --input-tokens + "
                   "--output-tokens where given, else 4096, or the model's maximum where it is shorter].")
@click.option("--prompt", "prompt_tokens", type=click.IntRange(min=1), default=None,
              help="Prompt tokens for TTFT [default: --input-tokens where given, else the context].")
@click.option("--engine", type=EngineName(["serving", *profiles.engine_names()]),
              default="serving", show_default=True,
              help="serving (or an engine's name, profiles/engines/): an optimized engine with CUDA graphs and chunked "
                   "prefill; transformers: eager generate; gpt-fast: a compiled decode step, one sequence. Pin a "
                   "release where its facts differ by release: sglang==0.5.6 (`optiplan catalog engines`).")
@click.option("--attention", type=click.Choice(["memory-efficient", "flash", "sdpa", "eager"]), default=None,
              help="Attention kernel: memory-efficient (= flash), sdpa (as transformers runs it), or eager "
                   "(materialises the score matrix) [default: memory-efficient; under --engine transformers, eager for "
                   "a model transformers has no SDPA attention for (Gemma 2, gpt-oss)].")
@click.option("--weight-kernel", default=None,
              help="The GEMM reading the weights: a kernel of profiles/efficiency.yaml (marlin, tinygemm, "
                   "torchao-int8, ggml-mmvq, ggml-mmvf, rocm-skinny-fp8, exllama) [default: the engine's kernel for "
                   "the format on the device's backend, its fallback where the device refuses it (vLLM's GPTQ "
                   "kernel on a T4), else the device's default].")
@click.option("--prefill-chunk", "prefill_chunk_tokens", type=int, default=None,
              help="The step's token budget with chunked prefill (vLLM --max-num-batched-tokens, SGLang "
                   "--chunked-prefill-size; TensorRT-LLM chunks at it) [default: the engine's].")
@click.option("--max-running", type=click.IntRange(min=1), default=None,
              help="The most requests the serving engine runs at once, as the deployment sets it (vLLM "
                   "--max-num-seqs, SGLang --max-running-requests, TensorRT-LLM --max_batch_size; TGI's "
                   "--max-concurrent-requests, past which it refuses) [default: the engine's].")
@click.option("--mixed-chunk", is_flag=True, default=False,
              help="Prompt chunks ride in the decode steps of an engine that otherwise runs prompts in steps of "
                   "their own, the decoding waiting for them (SGLang --enable-mixed-chunk).")
@click.option("--api-servers", type=click.IntRange(min=1), default=None,
              help="The front-end processes the serving engine takes its requests through (vLLM "
                   "--api-server-count), which share the host time each request takes [default: one].")
@click.option("--memory-share", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="The share of each GPU the serving engine's memory option gives, which sizes its KV cache (vLLM "
                   "--gpu-memory-utilization, SGLang --mem-fraction-static, TensorRT-LLM's "
                   "free_gpu_memory_fraction) [default: the engine's].")
@click.option("--sampler", type=click.Choice(["flashinfer", "native"]), default=None,
              help="The sampler vLLM's start-up profiling run peaks with, which sizes its KV cache: flashinfer "
                   "(FlashInfer's top-k/top-p kernels: the official images before 0.12, or "
                   "VLLM_USE_FLASHINFER_SAMPLER=1) or native (PyTorch's, which sorts the logits: a pip install "
                   "before 0.12, and the default from 0.12) [default: native].")
@click.option("--graph-padding", type=SizesType(), default=None,
              help="The CUDA-graph batch sizes the serving engine pads each decode-only step up to, as the deployment "
                   "sets them (TensorRT-LLM's cuda_graph_config: enable_padding with batch_sizes): the padding's "
                   "dummy sequences cost linear-layer and expert time [default: no padding].")
@click.option("--gpu-layers", type=click.IntRange(min=0), default=None,
              help="llama.cpp's --n-gpu-layers on one GPU: the last N of its layers and output head on the device, "
                   "the rest in host memory, computed by the CPU [default: all on the device].")
@click.option("--prefill-instances", type=click.IntRange(1), default=None,
              help="Prefill/decode disaggregated: the devices run as instances of --tp x --pp devices, this many "
                   "prefilling and the rest decoding (SGLang --disaggregation-mode, TensorRT-LLM disaggregated); "
                   "request-level figures in steady state.")
@click.option("--cpu-offload-gb", type=click.FloatRange(0, min_open=True), default=None,
              help="GiB of each device's weights kept in host memory and streamed to it every pass (vLLM's and "
                   "SGLang's --cpu-offload-gb) [default: none].")
@click.option("--host-memory-gbps", type=click.FloatRange(0, min_open=True), default=None,
              help="Peak GB/s of the host's memory, where llama.cpp computes the layers it keeps there [default: "
                   "76.8, two channels of DDR5-4800].")
@click.option("--host-link-gbps", type=click.FloatRange(0, min_open=True), default=None,
              help="GB/s one way between host and device as the slot runs it (PCIe 3.0 x8: 7.9) [default: the "
                   "device profile's].")
@click.option("--scheduling", type=click.Choice(["continuous", "static"]), default=None,
              help="Request-level figures with continuous batching or static batches [default: the engine's].")
@click.option("--input-tokens", type=click.IntRange(min=1), default=None,
              help="Request-level figures (TTFT, inter-token latency, output tokens/s with prefill included, "
                   "requests/s, goodput) for requests of this many prompt tokens...")
@click.option("--output-tokens", type=click.IntRange(min=1), default=None, help="...and this many output tokens...")
@click.option("--concurrency", type=ConcurrencyType(), default=None,
              help="...served this many at a time, or 'max' for as many as fit [default: 1].")
@click.option("--at-once", is_flag=True,
              help="...sent together, once (an offline benchmark: `vllm bench serve --num-prompts N` without a rate, "
                   "`trtllm-bench throughput`): the burst's means, not a steady state.")
@click.option("--in-process", is_flag=True,
              help="...handed to the engine in its own process (vLLM's LLM class, `trtllm-bench`), not through its "
                   "HTTP server: no front-end pacing and no server latency before the first token.")
@click.option("--num-requests", type=click.IntRange(min=1), default=None,
              help="...as a run of this many requests, --concurrency at a time (a benchmark client's --num-prompts "
                   "with --max-concurrency): the run's means and its median request's TTFT, its first wave sent "
                   "together and its last requests leaving one by one.")
@click.option("--length-spread", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="...its output lengths spread evenly over the mean x [1 - spread, 1 + spread] (1: "
                   "sglang.bench_serving's random lengths at its default range ratio).")
@click.option("--prompt-spread", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="...its prompt lengths spread the same way about --input-tokens (a client's random range ratio "
                   "spreads both): each request's first token as much later or sooner as its own prefill.")
@click.option("--warm-requests", type=click.IntRange(min=0), default=0, show_default=True,
              help="...its first this many prompts already in the engine's prefix cache (an earlier run with the "
                   "same seed sent them).")
@click.option("--cached-tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Request-level figures: each request's first this many prompt tokens already in the engine's "
                   "prefix cache (a shared system prompt), their prefill skipped.")
@click.option("--speculative", type=click.Choice(["draft", "eagle3", "mtp", "ngram"]), default=None,
              help="Speculative decoding: a draft model's proposals (--draft), an EAGLE-3 head's, the checkpoint's MTP "
                   "module's, or n-gram lookup in the prompt (give --spec-tokens and --acceptance; steady state only).")
@click.option("--draft", "draft_model", default=None, help="The draft model of --speculative draft (a catalog name), "
                                                           "on the same devices in the same format.")
@click.option("--spec-tokens", type=click.IntRange(1), default=None, help="Tokens proposed a speculative step.")
@click.option("--acceptance", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="The chance each proposed token is accepted (the workload's: measure it).")
@click.option("--slo-ttft-ms", "ttft_slo_ms", type=click.FloatRange(0, min_open=True), default=None,
              help="Goodput: TTFT at most this.")
@click.option("--slo-itl-ms", "itl_slo_ms", type=click.FloatRange(0, min_open=True), default=None,
              help="Goodput: inter-token latency at most this.")
@click.option("--measure", is_flag=True,
              help="Also run the real model here with transformers (a model folder; a catalog or config model is "
                   "built with random weights at full size when it fits) and report measured beside predicted.")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Interleaved rounds over the measured points (with --measure) [default: 5].")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON profile.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default=None,
              help="text (the tables) or json (as --json), as advise's --format names them [default: text].")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@friendly
def profile(model: str, hardware: str, as_json: bool, fmt: str | None, output: Path | None, measure: bool,
            repeats: int, **options) -> None:
    """Predict memory, FLOPs, bytes and roofline latency of MODEL on a device.

    MODEL is a catalog name or alias (`optiplan catalog models`), a config.json, a local model
    folder, or a hub id (only its config.json is fetched, when online). Examples:

    \b
      optiplan profile llama-3.1-70b --hardware h100-sxm --gpus 2 --context 8192 --batch 16
      optiplan profile llama-3.1-8b -H h100-sxm --input-tokens 1024 --output-tokens 256 --concurrency max
      optiplan profile qwen3-235b-a22b -H b200 --gpus 8 --engine sglang --input-tokens 4000 --output-tokens 500 \\
          --concurrency 16 --num-requests 80 --length-spread 1 --prompt-spread 1 --cached-tokens 500
      optiplan profile llama-3.1-8b -H h100-sxm --engine vllm --input-tokens 1000 --output-tokens 500 \\
          --concurrency 512 --max-running 64
      optiplan profile llama-3.1-8b -H h100-sxm --engine sglang --input-tokens 500 --output-tokens 300 \\
          --concurrency 16 --speculative eagle3 --spec-tokens 3 --acceptance 0.7
      optiplan profile ./config.json --hardware l4 --dtype bf16 --context 2048 --json
      optiplan profile ./local-model-folder --hardware local
    """
    from ..plan.engine_support import checked_profile
    from ..schema import ProfileRequest

    if not measure and repeats is not None:
        raise click.BadParameter("sets the measured rounds: give --measure too", param_hint="--repeats")
    if fmt == "text" and as_json:
        raise click.BadParameter("--format text and --json ask for two outputs: give one", param_hint="--format")
    as_json = as_json or fmt == "json"
    request = ProfileRequest(model=model, hardware=hardware, **options)
    # its request has the context resolved (no longer than the model takes); a setup its engine cannot run, said
    result = checked_profile(request)
    if measure:
        from ..measure.profile import measure_profile

        result = measure_profile(result.request, result, repeats=repeats or 5, show_progress=not as_json)
    if as_json:
        emit(result.model_dump_json(indent=2), output)
        return
    from ..report.console import print_profile

    if output is None:
        print_profile(result)
        return
    import io

    from rich.console import Console

    text = io.StringIO()  # the report as the terminal shows it, without colour, written as every -o file is
    print_profile(result, Console(file=text, width=110))
    emit(text.getvalue().rstrip("\n"), output)


@main.command()
@click.option("--model", "models", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model folders to fit on [default on a CPU: four random-weight Llama models, 128 to 640 wide, 2 "
                   "to 8 layers; on a GPU: Llama-3.2-1B, 3.2-3B and 3.1-8B with random weights].")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Interleaved rounds over the measured steps.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="What to calibrate: the CPU (efficiencies and fixed costs fitted), or the CUDA GPU (the "
                   "transformers engine's launch cost per layer, the host's; the device keeps its catalog "
                   "efficiencies). auto: the GPU where torch sees one.")
@click.option("--effects/--no-effects", default=True, show_default=True,
              help="Also measure each technique that can run here against the untouched model (time per token, "
                   "TTFT, batched tokens/s, weight and cache bytes); `--hardware local` plans with them. A new fit "
                   "without them drops the effects measured before.")
@click.option("--only-effects", is_flag=True, help="Measure the technique effects again and keep the machine's fit.")
@click.option("--technique", "-t", "techniques", multiple=True,
              help="Measure only these techniques' effects (the others keep their earlier measurement).")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration file.")
@friendly
def calibrate(models: tuple[Path, ...], repeats: int, device: str, effects: bool, only_effects: bool,
              techniques: tuple[str, ...], as_json: bool) -> None:
    """Measure this machine once: matmul throughput per dtype, memory bandwidth, the runtime's memory, how a
    matmul's rate grows with its rows, and the transformers engine's efficiency factors fitted to measured prefill
    and decode steps of models timed together; then the effect of each technique that can run here, on models of
    two widths (speculation only on --model folders: its acceptance needs trained weights).
    On a CUDA GPU, the transformers engine's launch cost per layer instead (eager transformers is launch-bound
    there, and the launches are the host's). Later `profile`/`advise` with --hardware local use them and say so."""
    from ..machine.calibration import load_calibration

    earlier = (load_calibration() or {}).get("effects")  # what -t keeps of the effects once a new fit replaces them
    if not only_effects:
        import torch

        from ..measure.calibrate_gpu import calibrate_machine

        if device == "cuda" and not torch.cuda.is_available():
            raise click.BadParameter("torch sees no CUDA device here (calibrate the CPU with --device cpu)",
                                     param_hint="--device")
        data, path = calibrate_machine(list(models) or None, repeats=repeats, device=device,
                                       show_progress=not as_json)
    from ...optimizers.effects import EFFECTS_ON_CPU_ONLY, effects_measurable

    if effects and not only_effects and not effects_measurable(data):
        # a GPU's fit: the effects would be the CPU's, which `--hardware local` (the GPU) never reads
        click.echo(f"note: {EFFECTS_ON_CPU_ONLY}", err=True)
    elif effects or only_effects:
        from ...optimizers.effects import calibrate_effects

        data, path = calibrate_effects(list(models) or None, rounds=max(repeats - 1, 1), show_progress=not as_json,
                                       techniques=list(techniques) or None, earlier=earlier)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from ..report.console import print_calibration

    print_calibration(data, path)


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--hardware", "-H", default=DEFAULT_HARDWARE, show_default=True,
              help="Catalog device id or alias, 'local', or 'auto' to rank catalog devices and counts.")
@click.option("--gpus", "--devices", "num_devices", type=click.IntRange(min=1), default=None,
              help="Devices [default: 1; with --hardware auto, the search picks].")
@click.option("--workload", "-w", default=None,
              help="Preset (chat, code-completion, rag-long-context, batch-offline, agent, fine-tune) or a YAML/JSON "
                   "file [default: fine-tune with --goal training, else chat].")
@click.option("--goal", type=click.Choice(["memory", "latency", "throughput", "context", "training", "cost"]),
              default=None, help="Override the workload's goal.")
@click.option("--engine",
              type=PlanEngineName(["vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp"]),
              default=None, help="Serving engine the plan must be expressible in [default: the workload's].")
@plan_overrides
@click.option("--format", "fmt", type=click.Choice(["text", "md", "markdown", "html", "json"]), default="text",
              show_default=True, help="text (the terminal's tables), md (markdown: Markdown for a pull request or "
              "wiki), html (one self-contained page with charts) or json (the versioned document).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file.")
@click.option("--emit-configs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write deployment configs for every engine that runs on the hardware to this folder (for "
                   "a training plan: its training script and launch config).")
@click.option("--force", is_flag=True, help="Replace an existing --emit-configs folder.")
@friendly
def advise(model: str, hardware: str, num_devices: int | None, workload: str | None, goal: str | None, quality: str | None,
           engine: str | None, concurrency: int | None, max_context: int | None, without: tuple[str, ...], fmt: str,
           output: Path | None, emit_configs: Path | None, force: bool) -> None:
    """Name the bottleneck of MODEL on the hardware under a workload, and plan what to do about it.

    \b
      optiplan advise llama-3.1-8b --hardware l4 --workload chat
      optiplan advise mixtral-8x7b --hardware h100-sxm --gpus 2 --goal throughput --format html -o report.html
      optiplan advise ./config.json --hardware auto --workload rag-long-context --max-quality-loss 1%

    Exit codes: 0 a plan, 2 bad input, 3 nothing fits or meets the workload.
    """
    from ..catalog.workloads import parse_percent
    from ..errors import ImpossibleError
    from ..plan.advise import advise as run_advise
    from ..schema.advice import AdviseRequest

    fmt = "md" if fmt == "markdown" else fmt
    request = AdviseRequest(model=model, hardware=hardware, num_devices=num_devices, workload=workload, goal=goal,
                            max_quality_loss_pct=parse_percent(quality), engine=engine, concurrency=concurrency,
                            max_context=max_context, without=without)
    try:
        advice = run_advise(request)
    except ImpossibleError as exc:
        if exc.document is None:  # nothing to show but the sentence (the error boundary prints it)
            raise
        _report(exc.document, fmt, output)  # the best plan that fits, with every miss in numbers
        raise
    if emit_configs is not None:
        _emit_configs(advice, request, emit_configs, force)
    _report(advice, fmt, output)


def _emit_configs(advice, request, out_dir: Path, force: bool) -> None:
    """`advise --emit-configs`: every engine's files for the advice, or, for a training plan, its training files."""
    from ..deploy.bundle import bundle, targets_of, training_refusal
    from ..deploy.render import write
    from ..plan.advise import advise as run_advise

    if why := training_refusal(advice):
        click.echo(f"warning: no configs written to {out_dir}: {why}", err=True)
        return

    def advise_for(engine: str, device: str, devices: int):
        return run_advise(request.model_copy(update={"engine": engine, "hardware": device, "num_devices": devices}))

    result = bundle(advice, targets_of("all"), advise_for)
    write(result.files, out_dir, force=force)
    click.echo(f"wrote {len(result.files)} deployment files to {out_dir}", err=True)
    for line in result.messages():
        click.echo(line, err=True)


def _report(advice, fmt: str, output: Path | None) -> None:
    if fmt == "text" and output is None:
        from ..report.advice import text_report

        text_report(advice, color=True)
        return
    from ..report.advice import render

    emit(render(advice, fmt), output)


@main.command()
@click.option("--graph", "graph_format", type=click.Choice(["json", "dot", "mermaid"]), default=None,
              help="Export the compatibility graph instead of the list.")
@click.option("--json", "as_json", is_flag=True, help="Print the declarations as JSON.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@friendly
def techniques(graph_format: str | None, as_json: bool, output: Path | None) -> None:
    """List the techniques the planner knows, or export their compatibility graph.

    \b
      optiplan techniques
      optiplan techniques --graph mermaid
    """
    from ..plan.graph import describe, export
    from ..plan.techniques import all_techniques

    if graph_format:
        emit(export(graph_format), output)
        return
    declared = [describe(t) for t in all_techniques().values()]
    if as_json:
        emit(json.dumps(declared, indent=2), output)
        return
    from ..report.console import print_techniques

    print_techniques(declared)


@main.command()
@click.argument("what", type=click.Choice(["models", "hardware", "workloads", "engines"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@friendly
def catalog(what: str, as_json: bool) -> None:
    """List the catalog's models, hardware, workload presets or engine profiles."""
    from ..report.console import catalog_rows, print_catalog

    rows = catalog_rows(what)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_catalog(what, rows)


from .configs import configs  # noqa: E402
from .gate import bench, gate  # noqa: E402
from .optimize import apply, verify  # noqa: E402  (the commands import torch only when they run)
from .serve import serve, worker  # noqa: E402  (fastapi, uvicorn and rq are imported only when they run)

for _command in (configs, apply, verify, bench, gate, serve, worker):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
