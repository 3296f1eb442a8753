"""Name what limits the baseline, with the evidence in numbers."""

from __future__ import annotations

from dataclasses import replace

from ..analytic.memory import weights_room
from ..analytic.setup import Setup
from ..analytic.steps import decode_step
from ..catalog.engines import engine_api_servers_option
from ..schema.advice import Bottleneck, Prediction
from ..schema.workload import Workload
from .predict import capacities, serving_figures, serving_instances, throughput_batch
from .state import PlanState, kv_reserved_tokens, to_setup
from .training import LOAD_PEAK_WHY

GB = 1e9
# the front end is named where it holds a server more than this share below what its device alone would serve: a
# plan step must move the goal's figure by as much (`objective.STEP_GAIN`), of the figure with it
FRONT_END_MARGIN = 0.03


def classify(state: PlanState, p: Prediction, workload: Workload) -> Bottleneck:
    """Primary and secondary bottleneck of a configuration, in priority order: what does not fit
    first, then what is slow."""
    spec, hw = state.spec, state.hw
    found: list[tuple[str, str, str]] = []  # (id, category, evidence)
    if workload.goal == "training":
        if not p.fits:
            found.append(("training-memory", "training",
                          (f"loading the model needs {p.load_peak_bytes / GB:,.1f} GB per device ({LOAD_PEAK_WHY})"
                           if p.load_peak_bytes else
                           f"a training step needs {p.memory_per_device_bytes / GB:,.1f} GB per device ("
                           + ", ".join(f"{what} {value / GB:,.1f} GB" for what, value in p.training_memory_parts)
                           + ")") + f" > {hw.memory_bytes / GB:,.1f} GB"))
        found.append(("compute", "training", f"a step takes {p.training_step_s:,.1f} s at "
                                             f"{p.throughput_tokens_per_s:,.0f} tokens/s"))
        return _pick(found)
    s = to_setup(state)
    # what the engine lets weights and activations take of a device (vLLM runs within its share of it): the whole
    # device less the runtime where the engine sets no share
    usable = weights_room(s, 0.0, s.runtime_bytes, raised=True)
    if spec.max_position_embeddings < workload.context_needed:
        found.append(("context-length", "context",
                      f"the workload needs {workload.context_needed:,} tokens, {spec.name} supports "
                      f"{spec.max_position_embeddings:,}"))
    if p.weights_per_device_bytes + p.activation_bytes > usable:
        found.append(("weights-memory", "memory",
                      f"weights {p.weights_per_device_bytes / GB:,.1f} GB"
                      + (f" and activations {p.activation_bytes / GB:,.1f} GB" if p.activation_bytes > 0.05 * usable else "")
                      + f" > {usable / GB:,.1f} GB a device leaves them ({state.devices} x {hw.id}, the engine's "
                        "share less its runtime)"))
    elif 0 < p.max_context < workload.context_needed:
        # the longest sequence the workload sends does not fit in the cache at all, whatever else runs beside it
        found.append(("kv-cache-memory", "context",
                      f"the KV cache holds a sequence of at most {p.max_context:,} tokens, the workload's longest "
                      f"needs {workload.context_needed:,}"))
    elif p.max_concurrency < workload.concurrency:
        category = "context" if p.max_concurrency == 0 else "memory"
        if p.activation_bytes > p.kv_cache_per_device_bytes:
            # the prompts' activations beside the cache take more than the cache itself: shortening the cache (KV
            # quantization, windows) frees less than prefilling in chunks or fewer prompts at once would
            found.append(("activation-memory", category,
                          f"memory beside the weights holds {p.max_concurrency} concurrent sequences, workload needs "
                          f"{workload.concurrency}: the prefill's activations take {p.activation_bytes / GB:,.1f} GB "
                          f"at {p.batch} sequence{'' if p.batch == 1 else 's'}, their KV cache "
                          f"{p.kv_cache_per_device_bytes / GB:,.1f} GB (each reserves "
                          f"{_reserved(state, workload):,} tokens)"))
        else:
            found.append(("kv-cache-memory", category,
                          f"KV cache allows {p.max_concurrency} concurrent sequences, workload needs "
                          f"{workload.concurrency} (each reserves {_reserved(state, workload):,} tokens)"))
    if (paced := _front_end(state, s, p, workload)) is not None:
        found.append(paced)
    # one replica's decode step at the workload's mean context: its collectives' share, its bound
    step = decode_step(s, max(p.batch // max(state.replicas, 1), 1), workload.mean_context)
    comm_share = step.comm_s / step.time_s if step.time_s else 0.0
    if comm_share > 0.3:
        found.append(("interconnect", "latency", f"all-reduces take {comm_share:.0%} of a decode step on "
                                                 f"{hw.interconnect.name if hw.interconnect else 'no link'}"))
    # the prompts' share of the time between output tokens: what the waiting prompts add to the plain decode steps
    # (chunks riding in them, or prompt steps between them), where it is most of it
    prompts = 1 - step.time_s * 1e3 / p.tpot_ms if p.tpot_ms else 0.0
    if prompts >= 0.5:
        found.append(("prefill-interference", "latency",
                      f"prompts take {prompts:.0%} of the time between output tokens: TPOT {p.tpot_ms:,.1f} ms where "
                      f"the batch's decode step takes {step.time_s * 1e3:,.1f} ms (prompts of "
                      f"{workload.prompt_tokens_mean:,} tokens on average share the steps or run between them): "
                      "fewer prompt tokens a step, or prompts served apart (disaggregation), shorten it"))
    if step.launch_bound:
        found.append(("host-launch", "latency",
                      f"decode is launch-bound: launching {s.spec.num_layers} layers' kernels takes "
                      f"{step.overhead_s * 1e3:,.1f} ms, the kernels {(step.roofline_s + step.comm_s) * 1e3:,.1f} ms "
                      f"(TPOT {p.tpot_ms:,.1f} ms): CUDA graphs or torch.compile remove the launches"))
    elif step.bound == "memory":
        # the intensity is the step's average; each kernel is bound by its own (and its own rates)
        found.append(("memory-bandwidth", "latency",
                      f"{_intensity(p.decode_intensity, s.ridge, p.decode_intensity >= s.ridge)}bandwidth-bound "
                      f"(TPOT {p.tpot_ms:,.1f} ms"
                      + (f"; its compute-bound kernels take {step.compute_bound_s * 1e3:,.1f} ms of it)"
                         if step.compute_bound_s else ")")))
    else:
        found.append(("compute", "throughput",
                      f"{_intensity(p.decode_intensity, s.ridge, p.decode_intensity < s.ridge)}compute-bound "
                      f"({step.compute_bound_s * 1e3:,.1f} ms of the step's "
                      f"{step.roofline_s * 1e3:,.1f} ms of kernels run at the compute roof)"))
    if p.prefill_intensity >= s.ridge:
        found.append(("compute", "latency", f"prefill is compute-bound: TTFT {p.ttft_ms:,.0f} ms for a "
                                            f"{workload.prompt_tokens_p95:,}-token prompt under the workload's load"))
    return _pick(found)


def front_end_bind(state: PlanState, s: Setup, p: Prediction, workload: Workload) -> tuple[float, float, int] | None:
    """(output tokens/s a server completes, those its device alone would serve, at that many sequences) where the
    engine's front end bounds the requests a server completes (`analytic.requests.front_end`: its host time per
    request, vLLM's API server) by more than FRONT_END_MARGIN of what its device alone would serve, at the plan's batch
    (the throughput and cost goals': the batch its device alone serves best within the TPOT SLO, searched as `evaluate`
    searches it, from the workload's batch up to what the engine's default share holds: `p` may be predicted at the
    workload's own concurrency, `evaluate(fill=False)`); None where it does not bind (or the plan is disaggregated:
    its servers' rates are the disaggregation model's). The front end lets a server complete what its device serves
    up to its cap, so at the batch the device serves best the paced rate is the most any batch reaches."""
    if not s.request_host_s or state.prefill_instances:
        return None
    per_server = -(-p.batch // serving_instances(p))
    alone = replace(s, request_host_s=0.0)
    held = capacities(state, s, workload)[0]
    if workload.goal in ("throughput", "cost") and held > per_server:  # a goal that fills the servers
        per_server = throughput_batch(state, alone, workload, per_server, held)
    paced = serving_figures(state, s, workload, per_server)[2]
    device = serving_figures(state, alone, workload, per_server)[2]
    if paced >= device * (1 - FRONT_END_MARGIN):
        return None
    return paced, device, per_server


def _front_end(state: PlanState, s: Setup, p: Prediction, workload: Workload) -> tuple[str, str, str] | None:
    """The engine's front end where it bounds the requests a server completes (`front_end_bind`)."""
    if (bind := front_end_bind(state, s, p, workload)) is None:
        return None
    paced, device, per_server = bind
    over = f" over {s.api_servers} front-end processes" if s.api_servers > 1 else ""
    # vLLM's fit: the same lab's faster hosts took 0.26-0.37 of it (profiles/engines/vllm.yaml request_host_source)
    hosts = ", whose faster hosts took a quarter to a third of it" if state.engine == "vllm" else ""
    more = "more front-end processes (vLLM's --api-server-count: the api-server-scale-out step)" \
        if engine_api_servers_option(state.engine) else "more servers behind a load balancer"
    return ("front-end", "throughput",
            f"the engine's front end completes at most {1 / s.request_host_s:,.0f} requests/s a server "
            f"({s.request_host_s * s.api_servers * 1e3:g} ms of host time a request{over}): "
            f"{paced:,.0f} output tokens/s a server, where its device alone would serve {device:,.0f} "
            f"at {per_server:,} sequences; {more} or a faster host raise it, a faster device does not. The host time "
            f"is fitted on one lab's servers{hosts}; a job handed to the engine in its own process (vLLM's LLM class "
            f"or run-batch, SGLang's offline Engine) has no HTTP front end: `optiplan profile --in-process` prices it")


def _intensity(intensity: float, ridge: float, across: bool) -> str:
    """The decode step's arithmetic intensity against the ridge at the rates its kernels reach; `across`: the step's
    bound is the other side's, set by the kernels that take most of it, each by its own intensity."""
    where = "above" if intensity >= ridge else "below"
    figure = f"decode arithmetic intensity {intensity:,.1f} FLOP/B"
    if across:
        return f"{figure} on average, {where} the ridge ({ridge:,.0f} at the rates reached), yet kernel by kernel "
    return f"{figure}, ridge {ridge:,.0f} at the rates reached: "


def _reserved(state: PlanState, workload: Workload) -> int:
    return int(kv_reserved_tokens(state, workload))


def _pick(found: list[tuple[str, str, str]]) -> Bottleneck:
    primary = found[0]
    secondary = next((f for f in found[1:] if f[0] != primary[0]), None)
    return Bottleneck(primary=primary[0], category=primary[1], secondary=secondary[0] if secondary else None,
                      evidence=[f[2] for f in found])
