"""A training plan's files (`advise --emit-configs` on a fine-tune workload): the Trainer script, the plan's settings
for it and accelerate's launch config, each step of the plan mapped onto the library that runs it; the script run for
two steps on the committed tiny model, on this CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from optiplan.planner.deploy.bundle import bundle
from optiplan.planner.deploy.render import validate, write
from optiplan.planner.deploy.training import training_files
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest

MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"


def _script(files: dict, folder: Path):
    """The rendered train.py, written under `folder` and imported."""
    import importlib.util

    write(files, folder)
    spec = importlib.util.spec_from_file_location("rendered_train", folder / "train" / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _tiny_mixtral(folder: Path):
    """A one-layer random Mixtral of four experts saved to `folder`, and its config."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)
    torch.manual_seed(0)
    MixtralForCausalLM(config).save_pretrained(folder)
    return folder, config


def _files(**request) -> tuple[dict, dict, dict, object]:
    a = advise(AdviseRequest(workload="fine-tune", **{"hardware": "h100-sxm", **request}))
    files = training_files(a)
    validate(files)
    return files, yaml.safe_load(files["train/train.yaml"]), yaml.safe_load(files["train/accelerate.yaml"]), a


@pytest.mark.parametrize("request_,steps", [
    # QLoRA on one H100: the NF4 base and checkpointing through the Trainer, no distributed launch
    (dict(model="llama-3.1-70b"), {"qlora", "activation-checkpointing"}),
    # a full fine-tune over two hosts of eight: FSDP2, its own activation checkpointing, two machines
    (dict(model="llama-2-70b", num_devices=16, without=("lora", "qlora")), {"fsdp", "activation-checkpointing"}),
    # Mixtral's routed experts as peft's target_parameters, FSDP over two devices
    (dict(model="mixtral-8x7b", num_devices=2), {"lora", "fsdp"}),
])
def test_the_plans_steps_become_the_trainers_and_accelerates_settings(request_, steps, tmp_path):
    from accelerate.commands.config.config_args import ClusterConfig

    files, train, launch, a = _files(**request_)
    planned = {s.technique for s in a.plan.steps}
    assert steps <= planned
    job, n = a.workload.training, a.hardware.count
    # the plan's step: its global batch over the devices' micro-batches
    assert train["per_device_batch"] * train["gradient_accumulation_steps"] * n == job.global_batch
    assert train["sequence_length"] == job.sequence_length and train["mixed_precision"] == "bf16"
    # (plans leave compile out for a mixture of experts: peft's adapters on 3-D expert parameters do not run under it)
    assert train["compile"] == ("compiled-training" in planned)
    assert not ("compiled-training" in planned and a.model.moe)
    assert train["experts_implementation"] is None
    assert launch["num_processes"] == n and launch["num_machines"] == -(-n // 8)
    assert launch["distributed_type"] == ("FSDP" if "fsdp" in planned else "MULTI_GPU" if n > 1 else "NO")
    if "fsdp" in planned:
        fsdp = launch["fsdp_config"]
        assert fsdp["fsdp_version"] == 2
        # under FSDP the layers are checkpointed by accelerate, not by the Trainer (transformers asks for that)
        assert fsdp["fsdp_activation_checkpointing"] == ("activation-checkpointing" in planned)
        assert train["gradient_checkpointing"] is False
        assert "FULL_STATE_DICT" in files["train/README.md"] and "FULL_STATE_DICT" in files["train/train.py"]
    else:
        assert train["gradient_checkpointing"] == ("activation-checkpointing" in planned)
    adapters = train["adapters"]
    if planned & {"lora", "qlora"}:
        assert adapters["base"] == ("nf4" if "qlora" in planned else None)
        assert adapters["rank"] == job.lora_rank
        # a mixture of experts' targets are spelled out by the script from the model
        assert adapters["target_modules"] == (None if a.model.moe else "all-linear")
        assert (adapters["target_parameters"] is not None) == (a.model.moe is not None)
    else:
        assert adapters is None
    readme = files["train/README.md"]
    for technique in planned:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{technique}` |"))
        assert "not set by these files" not in row, row
    if n > 8:
        assert "--machine_rank MACHINE_RANK --main_process_ip MAIN_IP" in readme and launch["main_process_port"]
    path = tmp_path / "accelerate.yaml"
    path.write_text(files["train/accelerate.yaml"])
    ClusterConfig.from_yaml_file(str(path))  # accelerate reads it: no key it does not know


def test_emit_configs_writes_the_training_files_not_a_refusal(tmp_path):
    """`advise --emit-configs` on a fine-tune plan had written nothing ('deployment configs render serving
    engines'); it now writes the training files."""
    a = advise(AdviseRequest(model="llama-3.2-1b", hardware="l4", workload="fine-tune"))
    result = bundle(a, ["vllm"], lambda *_: a)
    assert sorted(result.files) == ["train/README.md", "train/accelerate.yaml", "train/train.py", "train/train.yaml"]
    write(result.files, tmp_path / "out")
    assert (tmp_path / "out" / "train" / "train.py").read_text().startswith("#!/usr/bin/env python")


def test_the_script_trains_the_plans_adapters_on_this_cpu(tmp_path):
    """train.py as rendered for a LoRA plan, run for two optimizer steps on the committed tiny Llama (its settings cut
    to this CPU: short sequences, no compile): peft's adapters of the plan's rank are saved."""
    pytest.importorskip("peft")
    pytest.importorskip("torch")
    files, train, _, _ = _files(model="llama-3.2-1b", hardware="l4")
    assert train["adapters"] and train["adapters"]["base"] is None
    write(files, tmp_path / "cfg")
    folder = tmp_path / "cfg" / "train"
    train.update(sequence_length=32, gradient_accumulation_steps=1, per_device_batch=2, compile=False,
                 optimizer="adamw_torch")
    (folder / "train.yaml").write_text(yaml.safe_dump(train))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"line {i}: the quick brown fox jumps over the lazy dog " * 3}) + "\n"
                            for i in range(16)))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(folder / "train.py"), "--data", str(data), "--model",
                          str(MODELS / "target"), "--max-steps", "2", "--output", str(out)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == train["adapters"]["rank"] and config["lora_alpha"] == train["adapters"]["alpha"]
    assert (out / "adapter_model.safetensors").stat().st_size > 0


def test_the_script_puts_adapters_on_a_mixture_of_experts_routed_experts(tmp_path):
    """Mixtral's plan names its routed experts as peft's target_parameters: the rendered script had passed LoRA's
    dropout with them, which peft refuses ("lora.ParamWrapper does not work with lora_dropout != 0"). Its load_model
    runs on a tiny random Mixtral here, and the experts get adapters."""
    pytest.importorskip("peft")
    pytest.importorskip("torch")
    files, train, _, _ = _files(model="mixtral-8x7b", num_devices=2)
    assert train["adapters"]["target_parameters"] and train["adapters"]["dropout"] == 0.0
    tiny, config = _tiny_mixtral(tmp_path / "tiny-mixtral")
    script = _script(files, tmp_path / "cfg")
    train["mixed_precision"] = None  # this CPU's fp32
    model = script.load_model(train, str(tiny))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("experts" in n for n in names) and all("lora" in n for n in names)
    # the attention projections get theirs and the router none: peft resolves "all-linear" on a transformers-5 Mixtral
    # as transformers 4 did, the router included, which the plan does not count
    assert any("q_proj" in n for n in names) and not any(".mlp.gate." in n for n in names), names
    assert "but its MLPs' and routers'" in files["train/README.md"]


def test_a_mixture_of_experts_full_fine_tune_runs_its_experts_in_16_bits(tmp_path):
    """fp32 weights under autocast (a full fine-tune without FSDP): transformers' default grouped_mm experts are not
    autocast-enabled and would run in fp32, so the script registers grouped_mm over the experts' weights cast to bf16
    and loads the model with it; the gradients reach the fp32 experts."""
    torch = pytest.importorskip("torch")
    files, train, _, _ = _files(model="qwen1.5-moe-a2.7b", hardware="mi325x", without=("lora", "qlora"))
    assert train["experts_implementation"] == "grouped_mm_autocast" and not train["fsdp"] and not train["adapters"]
    assert 'experts_implementation="grouped_mm_autocast"' in files["train/README.md"]
    tiny, config = _tiny_mixtral(tmp_path / "tiny-mixtral")
    script = _script(files, tmp_path / "cfg")
    model = script.load_model(train, str(tiny))
    assert model.config._experts_implementation == "grouped_mm_autocast" and model.dtype == torch.float32
    # what the experts keep at their intermediate width for the backward: bf16 (the grouped experts keep fp32)
    experts = next(m for n, m in model.named_modules() if n.endswith("experts"))
    inside, kept = [False], []
    experts.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True))
    experts.register_forward_hook(lambda *_: inside.__setitem__(0, False))

    def pack(t):
        if inside[0] and t.shape[-1] == config.intermediate_size:
            kept.append(t.dtype)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=torch.randint(0, 128, (1, 16))).logits.float().sum().backward()
    assert kept and set(kept) == {torch.bfloat16}
    assert experts.gate_up_proj.grad is not None and experts.gate_up_proj.grad.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):  # no autocast: the experts as they are
        assert model(input_ids=torch.randint(0, 128, (1, 16))).logits.dtype == torch.float32


def test_eight_bit_adam_is_not_planned_beside_fsdp():
    """bitsandbytes' 8-bit optimizer states are not DTensor-aware ("illegal memory access with FSDP2",
    bitsandbytes#1633, open): an 8B full fine-tune on two H100s shards with FSDP and says why 8-bit Adam is out."""
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=2, workload="fine-tune",
                             without=("lora", "qlora")))
    steps = {s.technique for s in a.plan.steps}
    assert "fsdp" in steps and "optimizer-8bit" not in steps
    assert {r.technique: r.reason for r in a.rejected}["optimizer-8bit"].startswith("it does not run beside fsdp")


def test_packed_documents_attend_only_to_themselves(tmp_path):
    """The script packs documents into sequences of the plan's length. Each document must see only itself: the logits
    of a document packed after another equal its logits alone, and its first token is not a label of the previous
    document's last. The script had packed with an all-ones attention mask, so the second document attended to the
    first."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    files, _, _, _ = _files(model="llama-3.2-1b", hardware="l4")
    script = _script(files, tmp_path / "cfg")
    tokenizer = AutoTokenizer.from_pretrained(MODELS / "target")
    texts = ["the quick brown fox jumps over the lazy dog", "a second document about something else entirely"]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    first = len(tokenizer(texts[0])["input_ids"]) + 1  # its tokens and the end-of-sequence token
    second = len(tokenizer(texts[1])["input_ids"]) + 1
    (sequence,) = script.Packed(script.packed(data, tokenizer, first + second))
    sequence = {k: v.tolist() for k, v in sequence.items()}
    assert sequence["position_ids"] == [*range(first), *range(second)] and "attention_mask" not in sequence
    assert sequence["labels"][first] == -100 and sequence["labels"][first + 1:] == sequence["input_ids"][first + 1:]
    assert sequence["input_ids"] == tokenizer(texts[0])["input_ids"] + [tokenizer.eos_token_id] + \
        tokenizer(texts[1])["input_ids"] + [tokenizer.eos_token_id]
    model = AutoModelForCausalLM.from_pretrained(MODELS / "target", dtype=torch.float32).eval()
    batch = {k: torch.tensor([v]) for k, v in sequence.items() if k != "labels"}
    with torch.no_grad():
        # use_cache=False as the Trainer sets it (TrainingArguments.use_cache): with a cache transformers does not
        # read packed position ids
        together = model(**batch, use_cache=False).logits[0, first:]
        alone = model(input_ids=batch["input_ids"][:, first:]).logits[0]
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_the_data_is_packed_once_on_each_machine(tmp_path, monkeypatch):
    """Each process had tokenized and packed the whole data file into lists of its own (about 36 bytes a token in
    every process): the first process on a machine now packs it into an int32 file the others map, and a later run
    on the same data, tokenizer and length reuses it."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("torch")
    from transformers import AutoTokenizer, TrainingArguments

    files, _, _, _ = _files(model="llama-3.2-1b", hardware="l4")
    script = _script(files, tmp_path / "cfg")
    tokenizer = AutoTokenizer.from_pretrained(MODELS / "target")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(12)))
    training = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    dataset = script.packed_dataset(data, tokenizer, 32, training, tmp_path / "out" / "data")
    (cache,) = (tmp_path / "out" / "data").glob("packed-*.npy")
    assert isinstance(dataset.sequences, np.memmap) and dataset.sequences.dtype == np.int32
    assert len(dataset) == len(np.load(cache)) > 1 and set(dataset[0]) == {"input_ids", "position_ids", "labels"}
    monkeypatch.setattr(script, "packed", lambda *_: pytest.fail("packed again"))
    assert len(script.packed_dataset(data, tokenizer, 32, training, tmp_path / "out" / "data")) == len(dataset)
    with pytest.raises(BaseException, match="packed again"):  # another length is another packing
        script.packed_dataset(data, tokenizer, 16, training, tmp_path / "out" / "data")


def test_fsdp_counts_what_it_holds_unsharded():
    """FSDP2 holds more than its shards at the start of the backward: accelerate's tail group (the final norm and the
    head), two layers' gathered parameters and the gradients before their reduce-scatter. Llama 3.1 70B's full
    fine-tune on 16 H100s had been planned at 84.4 of 85.9 GB without them; with them (its 128K-token vocabulary makes
    the head 1.05B parameters) it needs 32, while Llama 2 70B (a 32K vocabulary) fits on 16 A100s, as Hugging Face's
    FSDP blog ran it (2 nodes of 8 A100 80GB)."""
    from optiplan.planner.errors import ImpossibleError

    with pytest.raises(ImpossibleError, match="nearest feasible: 32 x h100-sxm"):
        advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=16, workload="fine-tune",
                             without=("lora", "qlora")))
    a = advise(AdviseRequest(model="llama-2-70b", hardware="a100-80gb-sxm", num_devices=16, workload="fine-tune",
                             without=("lora", "qlora")))
    p = a.plan.predicted
    assert "fsdp" in {s.technique for s in a.plan.steps} and p.fits
    # the head (262M parameters), two 856M-parameter layers in bf16 and the gradients of the head and one layer: 6.2 GB
    assert 5.8e9 < p.gathered_bytes < 6.6e9
    parts = sum(value for _, value in p.training_memory_parts)
    assert parts < p.memory_per_device_bytes < parts + 2e9  # and the runtime
    assert "FSDP's unsharded copies" in training_files(a)["train/README.md"]


def test_qlora_under_fsdp_is_priced_at_its_load():
    """transformers loads a 4-bit model whole onto every GPU under FSDP, which shards it only after: Llama 3.1 405B's
    NF4 base does not load on an H100, so its adapters train over a 16-bit base on 32 H100s and QLoRA is rejected with
    the load as the reason."""
    a = advise(AdviseRequest(model="llama-3.1-405b", hardware="h100-sxm", num_devices=32, workload="fine-tune"))
    assert "lora" in {s.technique for s in a.plan.steps}
    reason = {r.technique: r.reason for r in a.rejected}["qlora"]
    assert "while the model loads" in reason, reason


def test_a_full_fine_tune_under_fsdp_loads_its_checkpoint_in_16_bits(tmp_path):
    """Every process loads the whole checkpoint under FSDP. In fp32 each had made its own copy in host memory (2.2 TB
    on a machine of eight for a 70B); in the checkpoint's 16 bits transformers maps the file, which the processes
    share, and accelerate upcasts the first process's copy. Without FSDP the fp32 master weights are loaded as
    before."""
    torch = pytest.importorskip("torch")
    files, train, _, a = _files(model="llama-2-70b", hardware="a100-80gb-sxm", num_devices=16,
                                without=("lora", "qlora"))
    assert train["fsdp"] and train["adapters"] is None
    readme = files["train/README.md"]
    assert "map the whole 138 GB checkpoint" in readme and "276 GB of fp32" in readme
    script = _script(files, tmp_path / "cfg")
    dtypes = {fsdp: {p.dtype for p in script.load_model({**train, "fsdp": fsdp}, str(MODELS / "target")).parameters()}
              for fsdp in (True, False)}
    assert dtypes == {True: {torch.bfloat16}, False: {torch.float32}}


def _tiny_layout(kind: str):
    """Two- or three-layer random configs of the layouts peft adapts differently: transformers 5's mixtures of experts
    and Mamba mixers."""
    import transformers

    common = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return {
        # a dense first layer and a shared expert beside the routed ones; latent attention
        "deepseek_v3": lambda: transformers.DeepseekV3Config(
            **{**common, "num_key_value_heads": 4}, intermediate_size=128, moe_intermediate_size=32,
            first_k_dense_replace=1, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, q_lora_rank=16,
            kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, n_group=1, topk_group=1),
        # a router that is an nn.Linear (PhimoeTopKRouter)
        "phimoe": lambda: transformers.PhimoeConfig(**common, intermediate_size=96, num_local_experts=4,
                                                    num_experts_per_tok=2),
        # a shared expert and its gate, an nn.Linear(hidden, 1)
        "qwen2_moe": lambda: transformers.Qwen2MoeConfig(**common, intermediate_size=128, moe_intermediate_size=32,
                                                         shared_expert_intermediate_size=64, num_experts=4,
                                                         num_experts_per_tok=2),
        "qwen3_moe": lambda: transformers.Qwen3MoeConfig(**common, intermediate_size=128, moe_intermediate_size=32,
                                                         num_experts=4, num_experts_per_tok=2, head_dim=16),
        "mixtral": lambda: transformers.MixtralConfig(**common, intermediate_size=96, num_local_experts=4,
                                                      num_experts_per_tok=2),
        # Mamba mixers (four projections) beside attention and experts
        "jamba": lambda: transformers.JambaConfig(**common, intermediate_size=96, num_experts=4, num_experts_per_tok=2,
                                                  expert_layer_period=2, expert_layer_offset=1, attn_layer_period=2,
                                                  attn_layer_offset=1, mamba_d_state=8, mamba_expand=2,
                                                  use_mamba_kernels=False),
        # gated linear attention (three projections), a gated attention and a shared expert
        "qwen3_next": lambda: transformers.Qwen3NextConfig(
            **common, head_dim=16, intermediate_size=128, moe_intermediate_size=32, shared_expert_intermediate_size=32,
            num_experts=4, num_experts_per_tok=2, linear_num_value_heads=4, linear_num_key_heads=2,
            linear_key_head_dim=16, linear_value_head_dim=16, layer_types=["linear_attention", "full_attention"]),
        # RG-LRU recurrences (three linear layers and 3-D gates) beside local attention
        "recurrent_gemma": lambda: transformers.RecurrentGemmaConfig(
            vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=1, lru_width=64, attention_window_size=16, pad_token_id=0, bos_token_id=0,
            eos_token_id=0),
        # short convolutions (in and out projections) beside attention
        "lfm2": lambda: transformers.Lfm2Config(vocab_size=128, hidden_size=64, intermediate_size=96,
                                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                layer_types=["conv", "full_attention"], block_auto_adjust_ff_dim=False),
        # Granite 4's dense hybrid: Mamba-2 mixers, attention, a fused gate-up shared MLP in every layer
        "granitemoehybrid": lambda: transformers.GraniteMoeHybridConfig(
            **common, intermediate_size=96, shared_intermediate_size=96, num_local_experts=0,
            layer_types=["mamba", "attention"], mamba_n_heads=8, mamba_d_head=16, mamba_d_state=16, mamba_n_groups=1,
            mamba_expand=2),
        # fused query-key-value and gate-up projections
        "phi3": lambda: transformers.Phi3Config(**common, intermediate_size=96, pad_token_id=0, bos_token_id=0,
                                                eos_token_id=0),
        # Mamba-2 mixers, whose output projection peft refuses LoRA on
        "mamba2": lambda: transformers.Mamba2Config(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_heads=8,
                                                    head_dim=16, state_size=16, n_groups=1, expand=2),
        "nemotron_h": lambda: transformers.NemotronHConfig(
            vocab_size=128, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            intermediate_size=128, mamba_num_heads=8, mamba_head_dim=16, ssm_state_size=16, n_groups=1,
            layers_block_type=["mamba", "attention", "mlp"]),
        # a shared transformer block with its adapter lists (nn.Sequential: peft had matched their indices against
        # every module of that index, the decoder layers among them, and refused them) before a Mamba-2 mixer
        "zamba2": lambda: transformers.Zamba2Config(
            vocab_size=128, hidden_size=64, num_hidden_layers=2, layers_block_type=["mamba", "hybrid"],
            num_attention_heads=4, num_key_value_heads=4, n_mamba_heads=4, mamba_d_state=16, intermediate_size=128,
            adapter_rank=8, chunk_size=16, pad_token_id=0, bos_token_id=0, eos_token_id=0),
        "zamba2_attention_adapters": lambda: transformers.Zamba2Config(
            vocab_size=128, hidden_size=64, num_hidden_layers=3, layers_block_type=["hybrid", "mamba", "hybrid"],
            num_attention_heads=4, num_key_value_heads=4, n_mamba_heads=4, mamba_d_state=16, intermediate_size=128,
            adapter_rank=8, chunk_size=16, use_shared_attention_adapter=True, num_mem_blocks=1, pad_token_id=0,
            bos_token_id=0, eos_token_id=0),
        # a router that is an nn.Linear, a shared expert and a dense layer between the MoE ones
        "llama4_text": lambda: transformers.Llama4TextConfig(
            **common, head_dim=16, intermediate_size=96, intermediate_size_mlp=128, num_local_experts=4,
            num_experts_per_tok=1, interleave_moe_layer_step=2, pad_token_id=0, bos_token_id=0, eos_token_id=0),
    }[kind]()


@pytest.mark.parametrize("kind", ["deepseek_v3", "phimoe", "qwen2_moe", "qwen3_moe", "mixtral", "llama4_text",
                                  "jamba", "qwen3_next", "mamba2", "nemotron_h", "recurrent_gemma", "lfm2", "phi3",
                                  "granitemoehybrid", "zamba2", "zamba2_attention_adapters"])
def test_the_script_adapts_each_layout_as_the_plan_counts(kind, tmp_path):
    """The script's adapters on a tiny random model of each layout are the plan's (`lora_params`), parameter for
    parameter, and every one gets a gradient. peft refuses LoRA on a Mamba mixer's output projection, which all-linear
    picks: the script for Mamba-2 and Nemotron-H had crashed; Jamba's dt_proj adapters got no gradient. peft 0.21 had
    adapted the routers under all-linear (Mixtral's and Qwen3-MoE's; Phi-3.5-MoE's and Llama 4's, nn.Linear routers
    returning tuples, crashed the forward), folded DeepSeek's dense and shared MLPs into its experts at twice the rank,
    and the plan had counted a gated expert's gate and up projections as two adapters where transformers 5 fuses them
    into one parameter."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.model_spec import model_spec_from_config
    from optiplan.planner.plan.state import PlanState
    from optiplan.planner.plan.training import lora_params
    from transformers import AutoModelForCausalLM

    # a MoE plan's settings for the MoE layouts, a dense one's for the Mamba ones
    moe = not kind.startswith(("mamba2", "nemotron_h", "recurrent_gemma", "lfm2", "phi3", "granitemoehybrid", "zamba2"))
    files, train, _, _ = _files(model="mixtral-8x7b", num_devices=2) if moe else _files(model="mamba2-2.7b", hardware="l4")
    script = _script(files, tmp_path / "cfg")
    config = _tiny_layout(kind)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / kind)
    model = script.load_model({**train, "mixed_precision": None}, str(tmp_path / kind))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state = PlanState(spec=model_spec_from_config(config.to_dict(), kind, "test"), hw=resolve_hardware("h100-sxm"),
                      devices=1, weight_dtype="bf16", training=frozenset({"mixed-precision", "lora"}))
    assert trainable == lora_params(state, train["adapters"]["rank"])
    if train["adapters"]["target_parameters"]:
        # transformers merges the experts' weights as it loads: each process holds its own copy, as the README says
        assert "each of a machine's 2 processes holds its own copy" in files["train/README.md"]
    ids = torch.randint(0, config.vocab_size, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    # every adapter trains: one the model reads by its weight alone (Mamba-1's dt_proj) gets no gradient, and a
    # data-parallel run (ddp_find_unused_parameters=False) stops at its second step
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_a_hybrid_models_readme_says_its_state_layers_see_across_documents():
    """Packed documents are masked apart for attention only: a state-space layer takes no mask, and the README of a
    hybrid model says so rather than that each document attends only to itself."""
    files, _, _, a = _files(model="nemotron-h-8b")
    assert a.model.layer_mix
    assert "state-space layers take no mask" in files["train/README.md"]
    dense, _, _, _ = _files(model="llama-3.1-8b")
    assert "take no mask" not in dense["train/README.md"]
