"""Plans that span nodes start on every node: vLLM over a Ray cluster, SGLang with a rank per node, TensorRT-LLM with
an MPI rank per GPU under srun; Kubernetes LeaderWorkerSets whose leader and worker commands agree; manifests carry
the hub token as a secret and a volume for the weights."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from optiplan.planner.deploy.render import engine_config, render
from optiplan.planner.errors import DeployError
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


@pytest.fixture(scope="module")
def pp_across_nodes():
    """Llama 3.1 405B in 16 bits on 16 H100: tensor parallel 8 in a node, pipeline parallel 2 across two."""
    a = advise(AdviseRequest(model="llama-3.1-405b", hardware="h100-sxm", num_devices=16, workload="chat",
                             engine="vllm", max_quality_loss_pct=0))
    assert (a.plan.predicted.tensor_parallel, a.plan.predicted.pipeline_parallel) == (8, 2)
    return a


@pytest.fixture(scope="module")
def ep_across_nodes():
    return advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat",
                                engine="sglang"))


def _syntax_ok(script: str) -> None:
    if shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.fixture(scope="module")
def reasoning(tmp_path_factory):
    """Offline reasoning traces: short prompts, long outputs (decode-heavy)."""
    workload = {"name": "reasoning-offline", "description": "short prompts, long outputs", "prompt_tokens_mean": 500,
                "prompt_tokens_p95": 1000, "output_tokens_mean": 4000, "output_tokens_p95": 8000, "concurrency": 1024,
                "goal": "throughput", "max_quality_loss_pct": 2.0}
    path = tmp_path_factory.mktemp("workload") / "reasoning.yaml"
    path.write_text(yaml.safe_dump(workload))
    return path


def test_vllm_starts_a_ray_cluster(pp_across_nodes, ep_across_nodes, reasoning):
    script = render(pp_across_nodes, "vllm")["vllm/serve.sh"]
    _syntax_ok(script)
    assert "ray start --head --port=6379" in script and 'ray start --address="${2' in script
    assert 'ray.cluster_resources().get("GPU", 0) < 16' in script  # the head waits for every worker's GPUs
    assert 'exit 2' in script  # a role other than head or worker is refused, not taken for the head
    assert "--distributed-executor-backend ray" in script and "--pipeline-parallel-size 2" in script
    dp = render(ep_across_nodes, "vllm")["vllm/serve.sh"]  # attention TP8 in each node, DP2 across, experts EP16
    assert "--tensor-parallel-size 8" in dp and "--enable-expert-parallel" in dp and "--data-parallel-size 2" in dp
    assert "--data-parallel-backend ray" in dp and "--data-parallel-size-local 1" in dp
    # data-parallel attention over all 16 for offline loads: every data-parallel rank is an engine core with its own
    # step budget (vLLM's data-parallel deployment), so batch-offline's prompts (two tokens in per token out) prefill
    # side by side on the ranks too; a chat's latency keeps tensor-parallel attention in each node with EP16
    prefill_heavy = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16,
                                         workload="batch-offline", engine="vllm"))
    assert "expert-parallel" in {s.technique for s in prefill_heavy.plan.steps}
    chat = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat",
                                engine="vllm"))
    chat_steps = {s.technique for s in chat.plan.steps}
    assert "expert-parallel" not in chat_steps and "expert-parallel-tp-attention" in chat_steps
    offline = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload=str(reasoning),
                                   engine="vllm"))
    assert "expert-parallel" in [s.technique for s in offline.plan.steps]
    dp = render(offline, "vllm")["vllm/serve.sh"]
    assert "--tensor-parallel-size 1" in dp and "--data-parallel-size 16" in dp
    assert "--data-parallel-backend ray" in dp and "--data-parallel-size-local 8" in dp
    readme = render(pp_across_nodes, "vllm")["README.md"]
    assert "./vllm/serve.sh head" in readme and "./vllm/serve.sh worker HEAD_ADDRESS" in readme  # beside vllm/


def test_sglang_ranks_and_trtllm_mpi(ep_across_nodes, reasoning):
    script = render(ep_across_nodes, "sglang")["sglang/serve.sh"]
    _syntax_ok(script)
    assert '--nnodes 2 --node-rank "$rank" --dist-init-addr "$head:5000"' in script
    with pytest.raises(DeployError, match="TensorRT-LLM runs attention either data parallel"):
        render(ep_across_nodes, "trtllm")  # TP8 x DP2 attention: not a layout TensorRT-LLM has
    # chat's prompts keep TensorRT-LLM's attention tensor parallel over all ranks (under data-parallel attention each
    # prompt would prefill on one rank while the others wait); decode-heavy work takes it data parallel over all
    chat = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat",
                                engine="trtllm"))
    assert chat.plan.predicted.attention_data_parallel == 1
    for_trtllm = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16,
                                      workload=str(reasoning), engine="trtllm"))
    assert for_trtllm.plan.predicted.attention_data_parallel == 16  # its data-parallel attention over all ranks
    trt = render(for_trtllm, "trtllm")["trtllm/serve.sh"]
    _syntax_ok(trt)
    assert "srun -N 2 --ntasks-per-node 8 --mpi=pmix trtllm-llmapi-launch" in trt


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_leaderworkerset_leader_and_workers_agree(ep_across_nodes, engine):
    files = render(ep_across_nodes, "kubernetes", serving_engine=engine)
    docs = list(yaml.safe_load_all(files["kubernetes/deployment.yaml"]))
    lws = next(d for d in docs if d["kind"] == "LeaderWorkerSet")
    template = lws["spec"]["leaderWorkerTemplate"]
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    worker = template["workerTemplate"]["spec"]["containers"][0]
    assert template["size"] == 2
    _syntax_ok(leader["args"][0])
    if engine == "vllm":
        assert leader["args"][0].startswith("ray start --head --port=6379 && until python3")
        assert "&& vllm serve" in leader["args"][0]
        # a worker up before the leader's head retries, rather than exit and have the group recreated
        assert worker["args"][0].startswith("until ray start --address=${LWS_LEADER_ADDRESS}:6379 --block; do")
        _syntax_ok(worker["args"][0])
    else:  # the same launch on every pod, its rank from LeaderWorkerSet
        assert leader["args"] == worker["args"]
        assert "--node-rank ${LWS_WORKER_INDEX} --dist-init-addr ${LWS_LEADER_ADDRESS}:5000" in leader["args"][0]
    for container in (leader, worker):
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
        assert {"name": "model-cache", "mountPath": "/models"} in container["volumeMounts"]
        assert container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]  # NCCL pins its RDMA buffers
    # the first start downloads the checkpoint: a startup budget for it, as the single-node Deployment has
    assert leader["startupProbe"]["failureThreshold"] * leader["startupProbe"]["periodSeconds"] > 600
    assert "NET/IB" in files["kubernetes/deployment.yaml"]
    assert "the predictions price 50 GB/s a GPU each way between nodes" in files["kubernetes/README.md"]
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_trtllm_is_not_put_in_a_leaderworkerset():
    for_trtllm = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat",
                                      engine="trtllm"))
    with pytest.raises(DeployError, match="MPI"):
        render(for_trtllm, "kubernetes", serving_engine="trtllm")


def test_single_node_deployment_has_a_weights_volume():
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", num_devices=1, workload="chat", engine="vllm"))
    docs = list(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert int(claim["spec"]["resources"]["requests"]["storage"][:-2]) > 16  # 16 GB of 16-bit weights


def test_replicas_inside_one_node_each_start_their_own_server():
    # 405B for throughput on 16 H100: two TP8 replicas, one per node behind a load balancer; each server is one
    # replica, with neither vLLM's data-parallel ranks nor their extra API server processes
    a = advise(AdviseRequest(model="llama-3.1-405b", hardware="h100-sxm", num_devices=16, workload="batch-offline",
                             engine="vllm"))
    assert (a.plan.predicted.tensor_parallel, a.plan.predicted.data_parallel) == (8, 2)
    serve = render(a, "vllm")["vllm/serve.sh"]
    assert "--tensor-parallel-size 8" in serve
    assert "--data-parallel-size" not in serve and "--api-server-count" not in serve


@pytest.mark.parametrize("model,devices,count,cores", [
    # one engine core: 4 API servers + 1 engine core + 1 GPU worker (vLLM's docs/configuration/optimization.md)
    ("llama-3.2-1b", 1, 4, 6),
    # two servers of eight data-parallel ranks (16 replicas of one GPU): 4 API servers for each rank, 32 + 8 + 8 + the
    # coordinator; not 64, the count over every replica, nor the data-parallel step's one per rank
    ("llama-3.2-1b", 16, 32, 49),
    # eight ranks of one server
    ("llama-3.2-1b", 8, 32, 49),
    # a MoE model's data-parallel attention ranks (vLLM's layout: the experts one group over the eight): two each
    ("deepseek-v2-lite", 8, 16, 33),
    # a MoE model's replicas of one GPU each start a server apiece (vLLM's ranks would share their experts): two each
    ("qwen3-30b-a3b", 16, 2, 4),
])
def test_the_plans_api_servers_are_started_for_each_rank_of_a_server(model, devices, count, cores):
    a = advise(AdviseRequest(model=model, hardware="h100-sxm", num_devices=devices, workload="chat",
                             goal="throughput", engine="vllm"))
    assert [s.technique for s in a.plan.steps][-1] == "api-server-scale-out"
    files = render(a, "vllm")
    serve, readme = files["vllm/serve.sh"], files["README.md"]
    assert f"--api-server-count {count} " in serve and serve.count("--api-server-count") == 1
    assert f"| `api-server-scale-out` | --api-server-count {count} (" in readme
    notes = [line for line in readme.splitlines() if line.startswith("- --api-server-count")]
    assert len(notes) == 1 and f"at least {cores} physical cores" in notes[0]
    # the data-parallel row names the same count (it had said one server process per rank beside the step's three)
    rows = [line for line in readme.splitlines() if line.startswith("| `data-parallel` |")]
    assert all(f"--api-server-count {count} " in row for row in rows if "--api-server-count" in row)


def test_replicas_a_node_holds_several_of_run_as_one_server_per_node():
    # Llama-3.1-70B for throughput on 16 H100: eight TP2 replicas, four to a node. The configs wrote one TP2 server
    # without the data-parallel flags its README's table named, and said "serve.sh on each node": two replicas of
    # eight. Each node's server now runs its four as data-parallel ranks; the Kubernetes Deployment holds two pods
    # of eight GPUs
    from optiplan.planner.catalog.hardware import resolve_hardware, server_ranks

    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=16, workload="chat",
                             goal="throughput", engine="vllm"))
    assert (a.plan.predicted.tensor_parallel, a.plan.predicted.data_parallel) == (2, 8)
    files = render(a, "vllm")
    serve, readme = files["vllm/serve.sh"], files["README.md"]
    assert "--tensor-parallel-size 2" in serve and "--data-parallel-size 4" in serve and "--api-server-count 4" in serve
    assert "--data-parallel-size 4 with --tensor-parallel-size 2 --api-server-count 4 in each of 2 servers" in readme
    assert "start 2 servers, one per node" in readme and "--data-parallel-size 8" not in readme
    docs = list(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 8
    h100 = resolve_hardware("h100-sxm")
    assert server_ranks(h100, 16, 8) == 4 and server_ranks(h100, 16, 2) == 1 and server_ranks(h100, 8, 4) == 4
    assert server_ranks(h100, 12, 6) == 3  # four fit a node, but six replicas split evenly three to a server
    assert server_ranks(h100, 16, 16, independent=False) == 1 and server_ranks(h100, 8, 4, independent=False) == 4


def test_a_first_start_that_downloads_the_checkpoint_is_not_killed_by_liveness():
    # liveness at 600 s + 3 x 30 s restarted a 70B's pod while it downloaded ~71 GB at under 100 MB/s, every time: a
    # startup probe now holds liveness off for the download at 50 MB/s and ten minutes to load
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat", engine="vllm"))
    docs = list(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 70e9 / 50e6 + 600
    assert "initialDelaySeconds" not in container["livenessProbe"]


def test_tensorrt_llm_serves_replicas_as_servers_of_their_own():
    # Llama-3.1-70B for throughput on 16 H100 with TensorRT-LLM had planned TP8 x PP2 over the two nodes ("data-parallel:
    # trtllm has no option for it") at 57% of vLLM's throughput; trtllm-serve has no data-parallel option, but copies
    # of the model are servers of their own behind a load balancer, as for vLLM across nodes
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=16, workload="chat",
                             goal="throughput", engine="trtllm"))
    p = a.plan.predicted
    assert "data-parallel" in [s.technique for s in a.plan.steps] and p.pipeline_parallel == 1
    assert p.data_parallel * p.tensor_parallel == 16 and p.data_parallel > 1
    files = render(a, "trtllm")
    assert f"--tp_size {p.tensor_parallel}" in files["trtllm/serve.sh"]
    assert f"start {p.data_parallel} servers" in files["README.md"] and "CUDA_VISIBLE_DEVICES" in files["README.md"]
    deployment = next(d for d in yaml.safe_load_all(render(a, "kubernetes", serving_engine="trtllm")
                                                    ["kubernetes/deployment.yaml"]) if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == p.data_parallel
    # on one node several servers share the host: docker compose, one service, says so instead of starting one
    one = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=8, workload="chat",
                               goal="throughput", engine="trtllm"))
    assert one.plan.predicted.data_parallel > 1
    with pytest.raises(DeployError, match="docker compose renders one server"):
        render(one, "compose", serving_engine="trtllm")


def test_tgi_replicas_on_one_host_take_their_ports_from_the_environment():
    # TGI's launcher (clap) refuses a second --port, and launchers on one host share a shard socket and a master port
    # by default: a replica's serve.sh takes SERVE_PORT and derives both from it
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=8, workload="chat",
                             goal="throughput", engine="tgi"))
    assert a.plan.predicted.data_parallel > 1
    files = render(a, "tgi")
    serve = files["tgi/serve.sh"]
    # not $PORT: TGI's image sets PORT=80 (its Dockerfile), so a replica would have listened there
    assert 'SERVE_PORT="${SERVE_PORT:-8000}"' in serve and '--port "$SERVE_PORT"' in serve and "--port 8000" not in serve
    assert '--shard-uds-path "/tmp/text-generation-server-$SERVE_PORT"' in serve and '"$PORT"' not in serve
    assert "servers of --num-shard" in files["README.md"]
    subprocess.run(["bash", "-n", "-c", serve], check=True)


def test_a_moes_vllm_replicas_across_nodes_each_hold_their_own_experts():
    # Mixtral in sixteen one-GPU vLLM replicas over two nodes: each server holds every expert, so its 93 GB of 16-bit
    # weights cannot load for online fp8 (the experts had been counted over all sixteen, 47 GB a device at most)
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.served import expert_devices
    from optiplan.planner.deploy.checkpoints import serving_checkpoint

    a = advise(AdviseRequest(model="mixtral-8x7b", hardware="h100-sxm", num_devices=16, workload="chat",
                             goal="throughput", engine="vllm"))
    p = a.plan.predicted
    assert (p.tensor_parallel, p.data_parallel, p.attention_data_parallel) == (1, 16, 1)
    assert expert_devices("vllm", p, resolve_hardware("h100-sxm")) == 1
    assert serving_checkpoint(a, "vllm", "mistralai/Mixtral-8x7B-v0.1").produced == "fp8"


def test_sglang_pipeline_stages_run_without_speculation_or_the_overlap_scheduler(pp_across_nodes):
    # SGLang refuses to start pipeline stages beside speculative decoding, mixed chunks or its overlap scheduler
    # (check_server_args): the planner leaves speculation out of such a layout, and its configs turn the overlap off
    a = advise(AdviseRequest(model="llama-3.1-405b", hardware="h100-sxm", num_devices=16, workload="chat",
                             engine="sglang", max_quality_loss_pct=0))
    assert a.plan.predicted.pipeline_parallel == 2
    assert not [s for s in a.plan.steps if s.technique.startswith("spec-") or s.technique == "mixed-chunk"]
    script = render(a, "sglang")["sglang/serve.sh"]
    assert "--pipeline-parallel-size 2" in script and "--disable-overlap-schedule" in script
    assert "--speculative-algorithm" not in script and "--enable-mixed-chunk" not in script
    # a plan edited by hand to speculate anyway: the config leaves the step out and says why
    steps = list(a.plan.steps)
    draft = next(s for s in steps if s.technique == "paged-kv").model_copy(
        update={"technique": "spec-ngram", "params": {"num_speculative_tokens": 4}})
    edited = a.model_copy(update={"plan": a.plan.model_copy(update={"steps": [*steps, draft]})})
    files = render(edited, "sglang")
    assert "--speculative-algorithm" not in files["sglang/serve.sh"]
    assert "runs no speculative decoding with pipeline stages (2 here)" in files["README.md"]
    from optiplan.planner.catalog.engine_refusals import pipeline_refusal

    assert pipeline_refusal("vllm", 2, "speculative") is None and pipeline_refusal("sglang", 1, "speculative") is None


def test_a_gb200_rack_is_launched_tray_by_tray():
    # an NVL72 rack's NVLink domain spans 72 GPUs, but a host (a compute tray) holds 4: 16 GPUs are four hosts, each
    # started as a node of its own, their pods requesting a tray's GPUs, and told how NVLink reaches across trays
    # (a plain 16-GPU Deployment and a single-host --tensor-parallel-size 16 could not have been placed)
    a = advise(AdviseRequest(model="deepseek-v3", hardware="gb200", num_devices=16, workload="chat", engine="sglang"))
    assert "pd-disaggregation" not in {s.technique for s in a.plan.steps}  # its roles start on one host only
    assert "span hosts" in next(r.reason for r in a.rejected if r.technique == "pd-disaggregation")
    script = render(a, "sglang")["sglang/serve.sh"]
    _syntax_ok(script)
    assert '--nnodes 4 --node-rank "$rank"' in script
    manifest = render(a, "kubernetes")
    deployment = list(yaml.safe_load_all(manifest["kubernetes/deployment.yaml"]))
    lws = next(d for d in deployment if d and d["kind"] == "LeaderWorkerSet")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 4
    assert "ComputeDomain" in manifest["kubernetes/README.md"] and "IMEX" in manifest["kubernetes/README.md"]
    # eight H100s are one host, as before: no IMEX note there
    assert "IMEX" not in render(advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8,
                                                     workload="chat", engine="vllm")), "vllm")["README.md"]


def test_an_expert_parallel_plan_says_which_dispatch_it_priced(ep_across_nodes):
    # the step model prices a top-k all-to-all; vLLM and SGLang run one only with a kernel the stock image lacks and
    # an option set: the advice says so, not only the config's README, and the ROCm builds' gather is named
    from optiplan.planner.catalog.expert_dispatch import dispatch_note
    from optiplan.planner.catalog.hardware import resolve_hardware

    a = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat", engine="vllm"))
    assert (a.plan.predicted.expert_parallel, a.plan.predicted.attention_data_parallel) == (16, 2)
    assert any(w.startswith("expert dispatch") and "VLLM_ALL2ALL_BACKEND" in w for w in a.warnings)
    assert any("--moe-a2a-backend deepep" in w for w in ep_across_nodes.warnings)
    assert "all-gathers every token" in dispatch_note("vllm", resolve_hardware("mi300x"))
    assert dispatch_note("trtllm", resolve_hardware("h100-sxm")) is None


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_leaderworkerset_pods_get_the_engines_environment(ep_across_nodes, engine, monkeypatch):
    """What serve.sh exports (vLLM's FlashInfer backend for an fp8 cache off Hopper, say) reaches the leader and the
    workers alike, as it reaches the single-node Deployment."""
    from optiplan.planner.deploy import render as render_module

    built = render_module.engine_config

    def with_env(advice, target):
        cfg = built(advice, target)
        cfg.env["VLLM_ATTENTION_BACKEND"] = "FLASHINFER"
        return cfg
    monkeypatch.setattr(render_module, "engine_config", with_env)
    docs = list(yaml.safe_load_all(render(ep_across_nodes, "kubernetes", serving_engine=engine)
                                   ["kubernetes/deployment.yaml"]))
    template = next(d for d in docs if d["kind"] == "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        env = {e["name"]: e.get("value") for e in template[role]["spec"]["containers"][0]["env"]}
        assert env["VLLM_ATTENTION_BACKEND"] == "FLASHINFER", role


def test_tgi_replicas_take_the_prefill_budget_of_the_server_they_are():
    """TGI computes its prefill budget from the devices a launcher shards over: four single-GPU replicas of an 8B on
    H100s each take the one-GPU budget the plan priced (59,870 tokens), where the configs had written the four GPUs'
    131,072 (the chunked-prefill step's budget was the deployment's, not a server's)."""
    def budget(devices):
        a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=devices, workload="chat",
                                 goal="throughput", concurrency=256, engine="tgi"))
        step = next(s for s in a.plan.steps if s.technique == "chunked-prefill")
        serve = render(a, "tgi")["tgi/serve.sh"]
        return a.plan.predicted.data_parallel, step.params["prefill_chunk_tokens"], serve
    replicas, four, serve = budget(4)
    assert replicas == 4 and four == budget(1)[1] == 59870
    assert "--max-batch-prefill-tokens 59870 " in serve


def test_kubernetes_probes_wait_five_seconds_and_a_cpu_pod_requests_its_memory():
    """Kubernetes' default probe timeout is one second, which a loaded server's health check can take longer than
    (liveness would restart it); a CPU pod without requests was BestEffort: placed anywhere, evicted first."""
    def container(hardware):
        a = advise(AdviseRequest(model="llama-3.2-1b", hardware=hardware, engine="llama.cpp", workload="chat"))
        docs = yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"])
        spec = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
        return a.plan.predicted, spec["containers"][0]
    _, gpu = container("h100-sxm")
    assert all(gpu[probe]["timeoutSeconds"] == 5 for probe in ("readinessProbe", "startupProbe", "livenessProbe"))
    p, cpu = container("epyc-9654")
    requested = int(cpu["resources"]["requests"]["memory"].removesuffix("Gi")) * 2**30
    assert p.memory_per_device_bytes < requested <= p.memory_per_device_bytes * 1.1 + 2**30


def test_tgi_captures_cuda_graphs_for_the_batch_the_plan_runs():
    """TGI's launcher captures decode graphs for batches up to 32 and runs larger ones eagerly, where the plan prices
    every step as a replayed graph: a server of 256 sequences gets graph sizes up to 256; one of 32 or fewer keeps
    the default."""
    big = advise(AdviseRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", goal="throughput", engine="tgi"))
    sizes = [int(n) for n in engine_config(big, "tgi").options["cuda-graphs"].split(",")]
    assert sizes[:6] == [1, 2, 4, 8, 16, 32] and sizes[-2] < big.plan.predicted.batch <= sizes[-1]
    small = advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", engine="tgi"))
    assert small.plan.predicted.batch <= 32 and "cuda-graphs" not in engine_config(small, "tgi").options


def test_the_readme_counts_one_servers_sequences_and_each_ranks_cap():
    """The README's sizing line said what a server runs beside what all the replicas' caches hold (4 TGI replicas:
    '755 per server ... the KV cache holds 3,232'), and a TensorRT-LLM server of eight attention ranks '2808 per
    server, as --max_batch_size sets them' where that option holds 351 per rank."""
    tgi = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=4, workload="chat",
                               goal="throughput", concurrency=256, engine="tgi"))
    p = tgi.plan.predicted
    line = next(x for x in render(tgi, "tgi")["README.md"].splitlines() if x.startswith("- concurrent sequences"))
    assert p.data_parallel == 4 and f"a server's KV cache holds {p.max_concurrency // 4} " in line
    # (replicas of two devices each serve it faster: left out, the plan takes the experts over eight attention ranks)
    trt = advise(AdviseRequest(model="qwen3-30b-a3b", hardware="h100-sxm", num_devices=8, workload="chat",
                               goal="throughput", engine="trtllm", without=("data-parallel",)))
    cap = engine_config(trt, "trtllm").options["max_batch_size"]
    line = next(x for x in render(trt, "trtllm")["README.md"].splitlines() if x.startswith("- concurrent sequences"))
    assert trt.plan.predicted.attention_data_parallel == 8 and f"({cap} on each of its 8 ranks)" in line


def test_a_pod_serving_a_file_the_user_copies_waits_for_it_in_an_init_container():
    """A llama.cpp Deployment serving a GGUF the user makes had started without it, failed and restarted until the
    file was copied in, through that crash-looping pod; it now waits in an init container, which the README's copy
    command names (under a name of its own, then renamed, so the server never starts on half a file)."""
    a = advise(AdviseRequest(model="mixtral-8x7b", hardware="rtx-4090", engine="llama.cpp", workload="batch-offline",
                             concurrency=4))
    files = render(a, "kubernetes")
    spec = next(d for d in yaml.safe_load_all(files["kubernetes/deployment.yaml"])
                if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    (wait,) = spec["initContainers"]
    served = spec["containers"][0]["args"][spec["containers"][0]["args"].index("--model") + 1]
    assert served.startswith("/models/local/") and f"[ -e {served} ]" in wait["command"][-1]
    assert "mkdir -p /models/local" in wait["command"][-1]
    assert {"name": "model-cache", "mountPath": "/models"} in wait["volumeMounts"]
    note = next(x for x in files["kubernetes/README.md"].splitlines() if "kubectl cp" in x)
    assert f"-c {wait['name']}" in note and f"mv {served}.partial {served}" in note
    subprocess.run(["sh", "-n", "-c", wait["command"][-1]], check=True)
    # a hub model needs no init container
    hub = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="vllm"))
    spec = next(d for d in yaml.safe_load_all(render(hub, "kubernetes")["kubernetes/deployment.yaml"])
                if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "initContainers" not in spec


def test_the_readme_asks_for_serve_shs_folder_only_where_its_notes_use_relative_paths():
    """'Run these in the folder of serve.sh ... models/ included' had stood above notes with nothing to run; and the
    sizing line says the workload's longest sequence is what the cache is sized for, beside a server limit that may be
    longer (vLLM's --max-model-len 131,072 against 4,096)."""
    tgi = render(advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", engine="tgi")), "tgi")["README.md"]
    assert "in the folder of `serve.sh`" not in tgi
    gguf = render(advise(AdviseRequest(model="mixtral-8x7b", hardware="rtx-4090", engine="llama.cpp",
                                       workload="batch-offline", concurrency=4)), "llama.cpp")["README.md"]
    assert "Run the commands below in the folder of `serve.sh`" in gguf
    assert "- longest sequence the cache is sized for: 3000 tokens, the workload's" in gguf
