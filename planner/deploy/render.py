"""Deployment configs from a plan: each plan step mapped to the serving engine's own options (one module per
engine), checked against the option names kept as data in `profiles/engine_options/`, then rendered through the
Jinja2 templates in `templates/deploy/`. A step an engine cannot express is listed as not applied, with the
reason; nothing is dropped silently. Files are written to a temporary folder and moved into place only when every
file rendered and validated.
"""

from __future__ import annotations

import json
import math
import shlex
from functools import lru_cache
from pathlib import Path

import yaml

from ..analytic.accuracy import band_text, bands_note, decode_band
from ..analytic.model_summary import model_summary
from ..catalog.engine_devices import backend_refusal, engine_runs_on
from ..catalog.engine_refusals import draft_attention_refusal, engine_step_refusal
from ..catalog.engine_state_models import (
    serving_refusal,
    state_model_options,
    state_technique_refusal,
)
from ..catalog.engines import deployed_engine, engine_release, engine_running_option
from ..catalog.hardware import devices_per_host, replicas_in_own_hosts, resolve_hardware
from ..catalog.models import resolve_model
from ..catalog.served import CHECKPOINT_FORMATS, server_dp_ranks
from ..errors import UnknownNameError
from ..fsutil import atomic_folder
from ..plan.predict import serving_instances
from ..schema.advice import Advice
from . import llamacpp, sglang, tgi, trtllm, vllm
from .checkpoints import checkpoint_bytes, checkpoint_dtype, serving_checkpoint
from .config import (
    ENGINES,
    HEALTH,
    PORT,
    TARGETS,
    DeployError,
    EngineConfig,
    advice_spec,
    check_options,
    container_refusal,
    engine_image,
    engine_options,
    max_seqs,
)
from .disaggregated import pd_launch
from .kubernetes import WAIT_CONTAINER, container_argv, gpu_resource, k8s_name, on_volume, wait_command
from .prediction import configured

# The Kubernetes startup probe's budget for a first start: the checkpoint downloaded at a conservative rate (a cloud
# node pulling from the Hugging Face Hub commonly sees 50-500 MB/s), then loaded and its CUDA graphs captured
STARTUP_DOWNLOAD_MB_S = 50
STARTUP_LOAD_S = 600

MAPPERS = {"vllm": vllm.engine_config, "sglang": sglang.engine_config, "tgi": tgi.engine_config,
           "trtllm": trtllm.engine_config, "llama.cpp": llamacpp.engine_config}


def engine_config(advice: Advice, engine: str) -> EngineConfig:
    if engine not in MAPPERS:
        raise UnknownNameError("engine", engine, TARGETS)
    hw = resolve_hardware(advice.hardware.id)
    if not engine_runs_on(engine, hw):
        raise DeployError(backend_refusal(engine, hw, list(MAPPERS)))
    advice, distilled = as_distilled(advice)
    model_type = advice.model.model_type
    release = deployed_engine(engine, hw)  # the release the config's image runs: its facts decide what it refuses
    if why := serving_refusal(release, model_type):
        raise DeployError(why)  # a model (or its state layers) this engine does not serve: no script that would fail
    # the plan may have been made for another engine or device: the steps this one does not run there are left out
    # (on a model with state layers, on this device's backend, on a model type it has no code of its own for)
    refused = [(s.technique, why) for s in advice.plan.steps
               if (why := state_technique_refusal(release, s.technique, model_type)
                   or engine_step_refusal(release, hw, model_type, s.technique, advice.model.kind)
                   or _draft_refusal(release, hw, advice, s.technique))]
    if refused:
        kept = [s for s in advice.plan.steps if s.technique not in dict(refused)]
        advice = advice.model_copy(update={"plan": advice.plan.model_copy(update={"steps": kept})})
    cfg = MAPPERS[engine](advice, hw)
    cfg.not_applied.extend(refused)
    if distilled:
        cfg.applied.insert(0, ("distillation", f"serves {advice.model.name}, the student the plan's figures are for"))
        cfg.notes.append(distilled)
    if engine != "llama.cpp":  # llama.cpp serves a GGUF file its mapper names
        served = serving_checkpoint(advice, engine, cfg.model, frozenset(t for t, _ in cfg.not_applied))
        _serve_model(cfg, served.model)
        cfg.checkpoint_format = served.published or served.produced
        cfg.notes.extend(served.notes)
        cfg.options.update(served.options)
        # TGI on ROCm serves an AWQ checkpoint only as --quantize gptq (its AWQ GEMM is CUDA-only: tgi.py)
        repacked = engine == "tgi" and cfg.options.get("quantize") == "gptq" and \
            (served.published or served.produced) == "awq"
        if (served.published or served.produced) and not repacked:
            # its config.json declares the quantization; an engine flag that disagrees stops it (a Model Optimizer
            # checkpoint declares modelopt, which vLLM will not serve as --quantization fp8)
            for key in ("quantization", "quantize"):
                cfg.options.pop(key, None)
            which = f"published {served.published}" if served.published else f"{served.produced} (produced as below)"
            cfg.applied = [(t_id, f"served from the {which} checkpoint, whose quantization_config the engine reads (it "
                                  "picks the kernel)") if t_id in CHECKPOINT_FORMATS else (t_id, how)
                           for t_id, how in cfg.applied]
    for o in state_model_options(engine, advice.model.model_type):
        cfg.options[o["option"]] = o["value"]
        cfg.notes.append(f"--{o['option']} {o['value']}: {o['why']} (source: {o['source'].split(' — ')[0]})")
    check_options(cfg)
    return cfg



def as_distilled(advice: Advice) -> tuple[Advice, str | None]:
    """The advice as the engine serves it: where the plan distils the model into a smaller one of its family, that
    student (its checkpoint, format and name; the plan's figures are its), the distillation step done, with a note
    saying what the config cannot do; else the advice as it is and None."""
    step = next((s for s in advice.plan.steps if s.technique == "distillation"), None)
    if step is None or not step.params.get("student"):
        return advice, None
    teacher, student = advice.model.name, model_summary(resolve_model(step.params["student"]))
    kept = [s for s in advice.plan.steps if s.technique != "distillation"]
    note = (f"the plan distils {teacher} into {student.name}, a smaller model of its family, and its figures are "
            f"{student.name}'s: this config serves {student.name} as published; train it on {teacher}'s outputs "
            f"first (no engine option does; the plan budgets {step.quality_loss_pct:g}% of quality for it), then serve "
            "that checkpoint in the plan's weight format in its stead")
    return advice.model_copy(update={"model": student, "plan": advice.plan.model_copy(update={"steps": kept})}), note


def _draft_refusal(release: str, hw, advice: Advice, technique: str) -> str | None:
    """Why the engine drafts no EAGLE-3 chain with the attention backend it runs for this plan on `hw` (vLLM 0.10-0.11
    over FlashAttention only: `draft_attention_refusal`; a plan made for another engine keeps its fp8 cache), or None."""
    if technique != "spec-eagle3":
        return None
    spec = advice_spec(advice)
    return draft_attention_refusal(release, hw, spec.attention_sinks,
                                   fp8_cache=any(s.technique == "kv-fp8" for s in advice.plan.steps))


def _serve_model(cfg: EngineConfig, model: str) -> None:
    """Point the config at `model`: its positional model and the option SGLang and TGI name it with."""
    cfg.model = model
    for key in ("model-path", "model-id"):
        if key in cfg.options:
            cfg.options[key] = model


def shell_command(argv: list[str]) -> str:
    """A command line with each argument quoted for a POSIX shell, one option per line."""
    lines = [[argv[0]]]
    for arg in argv[1:]:
        if arg.startswith("-"):
            lines.append([arg])
        else:
            lines[-1].append(arg)
    return " \\\n  ".join(" ".join(shlex.quote(a) for a in line) for line in lines)


@lru_cache(maxsize=1)
def template_env():
    """The deployment templates' environment, with the filters and globals they use."""
    import jinja2

    from ...templates import TEMPLATES_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR / "deploy")), autoescape=False,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["shell"] = shell_command
    env.filters["without_port"] = _without_port
    env.filters["yaml"] = lambda d: yaml.safe_dump(d, sort_keys=False, width=110).rstrip()
    env.filters["json"] = lambda d: json.dumps(d)
    env.filters["quote"] = shlex.quote
    env.globals["band"] = band_text  # each predicted figure with its error band, as the reports show it
    env.globals["decode_band"] = decode_band
    env.globals["bands_note"] = bands_note
    return env


# How each engine launches one model over several nodes (their docs): vLLM "Multi-Node" over a Ray cluster
# (docs/serving/parallelism_scaling.md: ray start --head / ray start --address=...), SGLang --nnodes / --node-rank /
# --dist-init-addr on every node, TensorRT-LLM trtllm-llmapi-launch under srun (examples/llm-api/
# llm_mgmn_trtllm_serve.sh: "the number of MPI processes should be the same as the model world size")
MULTINODE_LAUNCH = {"vllm": "ray", "sglang": "sglang", "trtllm": "mpi"}

# Engines that serve one model from one node only, and why (their own docs)
SINGLE_NODE = {"tgi": "its --num-shard shards over the GPUs of one machine",
               "llama.cpp": "llama-server splits layers over local devices; its RPC backend is experimental"}


def _folder(target: str) -> str:
    """The folder an engine target's files are written in (llama.cpp's without its dot)."""
    return target.replace(".", "")


def render(advice: Advice, target: str, serving_engine: str | None = None) -> dict[str, str]:
    """Files (relative path -> text) for one target: an engine, compose or kubernetes."""
    return _render(advice, target, serving_engine)[0]


# hosts that are trays of one NVLink domain (a GB200 NVL72 rack) reach each other's GPUs over NVLink only through
# IMEX channels, which a multi-host launch must be given
RACK_NVLINK_NOTE = (
    "the {nodes} hosts are trays of one {hw} NVLink domain: NCCL reaches the other trays' GPUs over NVLink only through "
    "IMEX channels (on Kubernetes, a ComputeDomain of NVIDIA's DRA driver claimed by every pod, the pods on trays of one "
    "NVLink partition, label nvidia.com/gpu.clique; elsewhere the IMEX service on each tray). Without them it falls back "
    "to the network, and the predictions, which price NVLink between the trays, do not hold "
    "(https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/dra-cds.html)")


# what a plan over several nodes assumes of the network between them, and how to see that NCCL uses it
SCALE_OUT_NOTE = (
    "the {nodes} nodes talk NCCL to each other: the predictions price {gbps:g} GB/s a GPU each way between nodes, one "
    "InfiniBand NDR (or RoCE) port per GPU. Start every node with the same image and environment and the checkpoint "
    "on local or shared storage; give the containers the RDMA devices (--privileged or the RDMA device plugin's "
    "resource, IPC_LOCK) and NCCL_IB_HCA, and check a first start's log with NCCL_DEBUG=INFO: \"NET/IB\" is RDMA, "
    "\"NET/Socket\" plain TCP, at which the predictions do not hold (vLLM's docs/serving/parallelism_scaling.md)")


def _render(advice: Advice, target: str, serving_engine: str | None = None) -> tuple[dict[str, str], dict | None]:
    """`render`'s files, and what its README says of the configuration where it leaves steps of the plan out
    (`prediction.configured`: its warning where it does not hold the workload), else None."""
    if target not in TARGETS or target == "all":
        raise UnknownNameError("engine", target, TARGETS)
    hw = resolve_hardware(advice.hardware.id)
    engine = serving_engine or (advice.workload.engine if advice.workload.engine in ENGINES else "vllm")
    engine = target if target in ENGINES else engine
    cfg = engine_config(advice, engine)
    advice = as_distilled(advice)[0]  # the model the config serves (a distilled plan's student) names the files
    env = template_env()
    per_node = devices_per_host(hw)  # a node here is a host: a GB200 tray, not its 72-GPU NVLink domain
    ctx = dict(a=advice, cfg=cfg, hw=hw, engine=engine, port=PORT, image=engine_image(engine, hw.features.backend),
               health=HEALTH[engine],
               # the release of the image the configs run, whose option names they use (the option data's range else)
               version=engine_release(deployed_engine(engine, hw)) or engine_options(engine)["version"],
               gpu_resource=gpu_resource(hw), devices=advice.hardware.count, per_node=min(per_node, advice.hardware.count),
               nodes=max(1, -(-advice.hardware.count // per_node)), name=k8s_name(advice.model.name))
    # where the engine's downloads go: llama.cpp's -hf files under LLAMA_CACHE (it never reads HF_HOME), the Hub's
    ctx["cache_variable"] = "LLAMA_CACHE" if engine == "llama.cpp" else "HF_HOME"
    ctx["replicas"] = 1
    ctx["port_var"] = False  # several servers on one host: serve.sh takes each one's port from $SERVE_PORT
    ctx["sequences"] = max_seqs(advice)  # each server's, as its options set them (--max-num-seqs, --max_batch_size)
    # what one server's cache holds (the plan's figure counts every serving replica's), and the cap each
    # data-parallel attention rank takes where the engine's option counts per rank (vLLM's, TensorRT-LLM's)
    p = advice.plan.predicted
    ctx["server_holds"] = p.max_concurrency // serving_instances(p)
    running = cfg.sets(engine_running_option(engine))
    ctx["ranks_cap"] = running if p.attention_data_parallel > 1 and running and running < ctx["sequences"] else None
    # the option that caps them (the engine profile's `options`), or None where the engine caps none (TGI)
    ctx["running_option"] = engine_running_option(engine)
    # where the engine cannot run every step, what its own configuration is predicted to do
    ctx["configured"] = configured(advice, cfg)
    # the checkpoint served (in its published format: fp8, gpt-oss's MXFP4 experts; else 16 bits), with room to spare
    fmt = cfg.checkpoint_format or checkpoint_dtype(advice)
    download = checkpoint_bytes(advice, fmt)
    ctx["cache_gib"] = math.ceil(download * 1.2 / 2**30) + 10
    ctx["cache_format"] = fmt or "16-bit"
    # the Kubernetes startup probe's budget: the first start's download of the checkpoint, then loading and capture
    ctx.update(download_gb=download / 1e9, download_mb_s=STARTUP_DOWNLOAD_MB_S, load_s=STARTUP_LOAD_S,
               startup_s=math.ceil(download / (STARTUP_DOWNLOAD_MB_S * 1e6)) + STARTUP_LOAD_S)
    dp, count = advice.plan.predicted.data_parallel, advice.hardware.count
    if replicas_in_own_hosts(hw, count, dp):
        # replicas that each fit in one node: a server per node, running the replicas the node holds as its
        # data-parallel ranks where the engine has the option (vLLM's and SGLang's --data-parallel-size) and they stay
        # independent copies (not vLLM's ranks of a MoE model), behind a load balancer; not one cluster over the nodes
        spec = advice_spec(advice)
        size, ranks = count // dp, server_dp_ranks(spec, hw, engine, count, dp)
        servers = dp // ranks
        per_rank = advice.plan.predicted.api_servers_per_rank  # the API servers of each rank (its scale-out step's)
        if ranks > 1 and "data-parallel-size" in cfg.options:
            cfg.options["data-parallel-size"] = ranks
            if "api-server-count" in cfg.options:
                cfg.options["api-server-count"] = ranks * per_rank
            how = f"--data-parallel-size {ranks} with --tensor-parallel-size {cfg.options.get('tensor-parallel-size', 1)}" \
                + (f" --api-server-count {ranks * per_rank}" if "api-server-count" in cfg.options else "")
            cfg.applied = [(t, f"{how} in each of {servers} servers, one per node ({dp} replicas of {_devices(size)} in "
                               "all, behind a load balancer; each rank schedules its own sequences)"
                            if t == "data-parallel" else text) for t, text in cfg.applied]
        else:  # vLLM's and SGLang's names, SGLang's alias, and vLLM's server processes for its ranks
            ranks = 1
            servers = dp
            for key in ("data-parallel-size", "dp-size", "api-server-count"):
                cfg.options.pop(key, None)
            cfg.applied = [(t, f"{dp} servers of {_devices(size)} behind a load balancer" if t == "data-parallel"
                            else text) for t, text in cfg.applied]
        if any(t == "api-server-scale-out" for t, _ in cfg.applied):  # the plan's API servers for each rank
            vllm.scale_api_servers(cfg, ranks, per_rank, size)
        per_node = max(1, devices_per_host(hw) // (size * ranks))
        where = "one per node (serve.sh on each node" if per_node == 1 else (
            f"{per_node} to a node (serve.sh once per server, each with its own CUDA_VISIBLE_DEVICES and SERVE_PORT")
        cfg.notes.append(f"{dp} replicas of {_devices(size)}" + (f", {ranks} to a server" if ranks > 1 else "")
                         + f": start {servers} servers, {where}, or the Kubernetes Deployment with replicas: "
                         f"{servers}), behind a load balancer")
        ctx.update(devices=size * ranks, per_node=size * ranks, nodes=1, replicas=servers, port_var=per_node > 1)
    elif dp > 1 and not cfg.pd and "data-parallel-size" not in cfg.options:
        # replicas sharing a node on an engine without a data-parallel option (TensorRT-LLM, TGI): a server each
        size = count // dp
        cfg.notes.append(f"{dp} replicas of {_devices(size)}: start {dp} servers (serve.sh once per server, each with its "
                         f"own CUDA_VISIBLE_DEVICES and SERVE_PORT, or the Kubernetes Deployment with replicas: {dp}), "
                         "behind a load balancer")
        ctx.update(devices=size, per_node=size, nodes=1, replicas=dp, port_var=True)
    if target == "compose" and ctx["replicas"] > 1 and ctx["per_node"] < min(count, devices_per_host(hw)):
        raise DeployError(f"docker compose renders one server and the plan runs {ctx['replicas']} replicas of "
                          f"{_devices(ctx['devices'])}, several to a host: render the kubernetes target (a Deployment "
                          "with a replica each) or start serve.sh once per replica")
    # how a plan that spans nodes is launched (None on one node): vLLM over a Ray cluster, SGLang with one process per
    # node and a rank, TensorRT-LLM with one MPI rank per GPU (trtllm-llmapi-launch under srun)
    ctx["launch"] = MULTINODE_LAUNCH.get(engine) if ctx["nodes"] > 1 else None
    if ctx["nodes"] > 1 and hw.interconnect is not None and hw.interconnect.devices_per_host:
        cfg.notes.append(RACK_NVLINK_NOTE.format(nodes=ctx["nodes"], hw=hw.id))
    elif ctx["nodes"] > 1 and hw.interconnect is not None:
        cfg.notes.append(SCALE_OUT_NOTE.format(nodes=ctx["nodes"], gbps=hw.interconnect.scale_out_gbps))
    if ctx["launch"] == "ray":
        if (cfg.options.get("data-parallel-size") or 1) > 1:  # data-parallel ranks spread over the Ray cluster's nodes
            cfg.options["data-parallel-backend"] = "ray"
            cfg.options["data-parallel-size-local"] = max(1, ctx["per_node"] // (cfg.options.get("tensor-parallel-size")
                                                                                   or 1))
        else:  # one engine whose tensor and pipeline shards span the nodes
            cfg.options["distributed-executor-backend"] = "ray"
        check_options(cfg)
    files: dict[str, str] = {}
    slug = engine.replace(".", "")
    if ctx["nodes"] > 1 and (target == "compose" or engine in SINGLE_NODE):
        where = (f"the plan spans {ctx['nodes']} nodes of {ctx['per_node']} x {hw.id} "
                 f"({advice.hardware.count} devices)")
        if target == "compose":
            raise DeployError(f"docker compose runs on one host and {where}: render the kubernetes target (a "
                              "LeaderWorkerSet) instead")
        raise DeployError(f"{engine} runs on one node ({SINGLE_NODE[engine]}) and {where}")
    if cfg.pd and target not in ENGINES:
        raise DeployError(f"prefill/decode disaggregation is rendered as the {engine} target's serve.sh roles on one "
                          f"node ({cfg.pd[0]} prefill and {cfg.pd[1]} decode instances and a router); {target} "
                          "manifests for it are not rendered")
    if target in ENGINES and cfg.pd:
        roles, extra = pd_launch(cfg, *cfg.pd)
        files[f"{slug}/serve.sh"] = env.get_template("serve-pd.sh.j2").render(
            **ctx, roles=roles, prefill=cfg.pd[0], decode=cfg.pd[1], size=cfg.pd[2])
        files.update({f"{slug}/{path}": text for path, text in extra.items()})
    elif target in ENGINES:
        extra_file = "extra-llm-api-options.yaml" if cfg.extra else None
        files[f"{slug}/serve.sh"] = env.get_template("serve.sh.j2").render(**ctx, argv=cfg.argv(extra_file))
        if engine == "vllm":
            # vLLM's config file is read as flat arguments, each value passed through str(): a mapping (its
            # --speculative-config) must be the JSON string its option parses, not a nested YAML mapping
            # (vllm/utils FlexibleArgumentParser.load_config_file: "only expecting a flat dictionary of atomic types")
            config = {"model": cfg.model, **{k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v
                                              for k, v in cfg.options.items() if v is not False}}
            files[f"{slug}/config.yaml"] = env.get_template("vllm-config.yaml.j2").render(**ctx, config=config)
        if cfg.extra:
            files[f"{slug}/{extra_file}"] = env.get_template("trtllm-extra.yaml.j2").render(**ctx)
        if cfg.env:
            files[f"{slug}/engine.env"] = "".join(f"{k}={shlex.quote(v)}\n" for k, v in cfg.env.items())
    elif (refusal := container_refusal(engine, hw)) is not None:  # compose or kubernetes: an image must run it there
        raise DeployError(refusal)
    elif target == "compose":
        # a folder or file the user produces or downloads (./models/...), read from the working directory /
        local = engine == "llama.cpp" or cfg.model.startswith("./models/") or _draft_folder(cfg) is not None
        files["compose/docker-compose.yaml"] = env.get_template("docker-compose.yaml.j2").render(
            **ctx, argv=container_argv(cfg), local_models=local)
        if cfg.extra:  # the file the service mounts beside docker-compose.yaml (a missing one mounts as a folder)
            files["compose/extra-llm-api-options.yaml"] = env.get_template("trtllm-extra.yaml.j2").render(**ctx)
    else:
        volume, waits = f"{ctx['name']}-models", ctx["nodes"] == 1  # a Deployment's pod waits for the files
        if cfg.model.startswith("./models/"):  # a folder the user produces: on the weights volume, not in the image
            _serve_model(cfg, on_volume(cfg, cfg.model, volume, waits))
        if (draft := _draft_folder(cfg)) is not None:  # TensorRT-LLM's speculative model, downloaded, likewise
            cfg.extra["speculative_config"]["speculative_model_dir"] = on_volume(cfg, draft, volume, waits)
        for key in ("model", "model-draft"):  # llama-server's GGUF files, which the user produces, likewise
            if str(cfg.options.get(key, "")).startswith("models/"):
                cfg.options[key] = on_volume(cfg, cfg.options[key], volume, waits)
        template = "k8s-leaderworkerset.yaml.j2" if ctx["nodes"] > 1 else "k8s-deployment.yaml.j2"
        if ctx["nodes"] > 1 and engine not in ("vllm", "sglang"):
            raise DeployError(f"a {ctx['nodes']}-node LeaderWorkerSet is rendered for vLLM (a Ray cluster) and SGLang "
                              f"(one rank per pod); {engine} launches across nodes with MPI: use its serve.sh under "
                              "Slurm instead")
        files["kubernetes/deployment.yaml"] = env.get_template(template).render(
            **ctx, argv=container_argv(cfg), wait_container=WAIT_CONTAINER, wait_command=wait_command(cfg))
    readme = env.get_template("README.md.j2").render(**ctx, target=target, files=sorted(files),
                                                     launcher_folder=_folder(target) if target in ENGINES else None)
    if target in ENGINES:  # beside its engine's folder: the launcher is in it (render_all moves it inside)
        readme = readme.replace("./serve.sh", f"./{_folder(target)}/serve.sh")
    files["README.md" if target in ENGINES else f"{target}/README.md"] = readme
    validate(files)
    return files, ctx["configured"]


def _draft_folder(cfg: EngineConfig) -> str | None:
    """The local folder TensorRT-LLM reads its speculative model from (./models/...), None where it has none."""
    folder = (cfg.extra.get("speculative_config") or {}).get("speculative_model_dir")
    return folder if isinstance(folder, str) and folder.startswith("./models/") else None


def _without_port(argv: list[str]) -> list[str]:
    """A command line without its --port and value (a script that takes each replica's port from $SERVE_PORT)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--port":
            skip = True
        else:
            out.append(arg)
    return out


def _devices(n: int) -> str:
    return f"{n} device{'s' if n != 1 else ''}"


def validate(files: dict[str, str]) -> None:
    """Every YAML and JSON parses; Kubernetes objects carry apiVersion, kind and metadata."""
    for path, text in files.items():
        try:
            if path.endswith((".yaml", ".yml")):
                docs = [d for d in yaml.safe_load_all(text) if d is not None]
                for d in docs:
                    if path.startswith("kubernetes/") and not {"apiVersion", "kind", "metadata"} <= set(d):
                        raise DeployError(f"{path}: a Kubernetes object lacks apiVersion, kind or metadata")
            elif path.endswith(".json"):
                json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise DeployError(f"{path}: rendered file does not parse: {exc}") from exc


def write(files: dict[str, str], out_dir: Path, force: bool = False) -> list[Path]:
    """Write all files or none: render into a temporary folder, then move it into place."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise DeployError(f"{out_dir} exists and is not empty; pass --force to replace it")
    try:
        with atomic_folder(out_dir) as tmp:
            for rel, text in files.items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                if rel.endswith(".sh"):
                    path.chmod(0o755)
    except OSError as exc:
        raise DeployError(f"cannot write to {out_dir}: {exc.strerror or exc}") from exc
    return [out_dir / rel for rel in sorted(files)]


def render_all(advice: Advice, targets: list[str], plans: dict[str, Advice] | None = None,
               notes: list[str] | None = None, skipped: list[str] | None = None
               ) -> tuple[dict[str, str], list[str], list[str]]:
    """Files for several targets, the targets skipped with their reason (e.g. TensorRT-LLM on a CPU), and a warning
    for each engine target whose own configuration, leaving out steps of the plan it cannot run, is predicted not to
    hold the workload (llama.cpp serving a 16-bit GGUF of a plan made in fp8 over tensor shards). `plans` gives an
    engine target its own plan (the one `advise --engine` makes for it) in place of `advice`, the serving engine's,
    which the wrappers (compose, kubernetes) and the index keep; `notes` (an engine rendered from a plan other than its
    own best) and the warnings go into the index; `skipped`, targets left out already with their reason (an engine
    none of whose plans fits the devices)."""
    files: dict[str, str] = {}
    skipped, warnings, rendered = list(skipped or []), [], []
    for target in targets:
        try:
            written, summary = _render((plans or {}).get(target, advice), target)
        except DeployError as exc:
            if len(targets) == 1:
                raise
            skipped.append(f"{target}: {exc}")
            continue
        rendered.append(target)
        if target in ENGINES and summary and summary["warning"]:
            warnings.append(summary["warning"])
        for rel, text in written.items():
            key = rel
            if rel == "README.md" and len(targets) > 1:  # into its engine's folder, beside the launcher
                key, text = f"{_folder(target)}/README.md", text.replace(f"./{_folder(target)}/serve.sh", "./serve.sh")
            files[key] = text
    if len(targets) > 1:
        files["README.md"] = template_env().get_template("index.md.j2").render(
            a=advice, targets=targets, rendered=rendered, skipped=skipped, files=sorted(files), notes=notes or [],
            warnings=warnings, own_plans=sorted(t for t in plans or {} if t in rendered))
    return files, skipped, warnings
