"""Build the small real models the tests use: a byte-level BPE tokenizer and two Llama-architecture
models trained on English text that ships with Python (`pydoc_data.topics`, about 0.5 MB): an
8-layer target and a 1-layer draft of the same tokenizer (for speculative decoding).

Reproducible: fixed seeds, deterministic data order, one thread. Writes ordinary Hugging
Face folders (config, safetensors weights in bf16, tokenizer) that `AutoModelForCausalLM.from_pretrained`
loads, plus `MANIFEST.json` with held-out perplexities before and after training and the SHA-256 of
every file. Run from the repository root:

    python tests/assets/build_test_models.py            # writes tests/assets/models/{target,draft}
    python tests/assets/build_test_models.py --out DIR  # elsewhere, e.g. to compare checksums
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "models"
VOCAB = 1024
SEQ = 128
SPECS = {
    # name: (hidden, intermediate, layers, heads, kv heads, steps, batch, peak learning rate)
    "target": (192, 512, 8, 6, 2, 900, 8, 1e-3),
    "draft": (128, 384, 1, 4, 2, 700, 8, 3e-3),
}


def corpus() -> tuple[str, str]:
    """The pydoc topics, in sorted key order; every tenth topic is held out."""
    from pydoc_data.topics import topics

    keys = sorted(topics)
    train = "\n\n".join(topics[k] for i, k in enumerate(keys) if i % 10)
    held = "\n\n".join(topics[k] for i, k in enumerate(keys) if not i % 10)
    return train, held


def build_tokenizer(text: str):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=VOCAB, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|endoftext|>")


def perplexity(model, ids, batch: int = 16) -> float:
    import torch

    n = (len(ids) - 1) // SEQ
    x = torch.tensor(ids[: n * SEQ + 1])
    inputs = x[:-1].view(n, SEQ)
    labels = x[1:].view(n, SEQ)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, batch):
            logits = model(input_ids=inputs[i:i + batch]).logits.float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                                     labels[i:i + batch].reshape(-1), reduction="sum")
            total += loss.item()
            count += labels[i:i + batch].numel()
    return math.exp(total / count)


def train(name: str, train_ids: list[int], held_ids: list[int], eos: int) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv, steps, batch, lr = SPECS[name]
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=2048,
                         rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos,
                         pad_token_id=eos)
    model = LlamaForCausalLM(config)
    before = perplexity(model, held_ids)
    data = torch.tensor(train_ids)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        offsets = torch.randint(0, len(data) - SEQ - 1, (batch,), generator=generator)
        x = torch.stack([data[o:o + SEQ] for o in offsets])
        y = torch.stack([data[o + 1:o + SEQ + 1] for o in offsets])
        loss = torch.nn.functional.cross_entropy(model(input_ids=x).logits.reshape(-1, VOCAB), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0:
            print(f"  {name} step {step:4d} loss {loss.item():.3f}", flush=True)
    seconds = time.perf_counter() - start
    after = perplexity(model, held_ids)
    model = model.to(torch.bfloat16)
    model.config.torch_dtype = "bfloat16"
    model.save_pretrained(OUT / name)
    return {"params": sum(p.numel() for p in model.parameters()), "layers": layers, "hidden": hidden,
            "train_steps": steps, "train_seconds": round(seconds, 1),
            "held_out_perplexity_untrained": round(before, 2), "held_out_perplexity_trained": round(after, 2)}


def decode_cost_ratio(steps: int = 200) -> float:
    """Draft / target time of one decode step (a forward pass of one token against a cache of 64):
    the cost ratio c of speculative decoding, batch 1, on this CPU."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    times = {}
    for name in ("target", "draft"):
        model = AutoModelForCausalLM.from_pretrained(OUT / name, dtype=torch.float32).eval()
        with torch.no_grad():
            cache = DynamicCache(config=model.config)
            model(input_ids=torch.arange(1, 65).unsqueeze(0), cache=cache)
            token = torch.tensor([[7]])
            samples = []
            for _ in range(steps):
                start = time.perf_counter()
                model(input_ids=token, cache=cache)
                cache.crop(-1)  # drop the token just added: the context stays at 64
                samples.append(time.perf_counter() - start)
        times[name] = sorted(samples)[len(samples) // 2]
    return times["draft"] / times["target"]


def checksums() -> dict[str, str]:
    return {str(p.relative_to(OUT)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(OUT.rglob("*")) if p.is_file() and p.name != "MANIFEST.json"}


def main() -> None:
    import argparse

    import torch

    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    OUT = parser.parse_args().out

    # one thread: the same result on any machine, and no slowdown when another process shares the cores
    torch.set_num_threads(1)
    train_text, held_text = corpus()
    tokenizer = build_tokenizer(train_text)
    eos = tokenizer.eos_token_id
    train_ids = tokenizer(train_text)["input_ids"]
    held_ids = tokenizer(held_text)["input_ids"]
    print(f"corpus: {len(train_ids):,} training tokens, {len(held_ids):,} held-out tokens, vocabulary {VOCAB}")
    manifest = {"corpus": "pydoc_data.topics (every tenth topic held out)", "sequence_length": SEQ, "models": {}}
    for name in SPECS:
        manifest["models"][name] = train(name, train_ids, held_ids, eos)
        tokenizer.save_pretrained(OUT / name)
        print(f"{name}: {manifest['models'][name]}")
    manifest["draft_to_target_time_per_token"] = round(decode_cost_ratio(), 3)
    manifest["sha256"] = checksums()
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"draft/target time per token: {manifest['draft_to_target_time_per_token']}")


if __name__ == "__main__":
    main()
