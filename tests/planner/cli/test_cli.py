"""The `optiplan` command line, as a user runs it: output, stable JSON keys, exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from optiplan.planner.cli.main import main

STABLE_KEYS = ["model.params_total", "model.params_active", "model.embedding_params", "memory.weights_bytes",
               "memory.kv_cache_bytes", "memory.per_device_bytes", "latency.ttft_ms", "latency.tpot_ms",
               "throughput.tokens_per_s", "fits"]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def dig(data, dotted):
    for part in dotted.split("."):
        data = data[part]
    return data


def test_profile_json_has_the_stable_keys():
    result = run("profile", "llama-3.1-70b", "--hardware", "h100-sxm", "--gpus", "2", "--context", "8192",
                 "--batch", "16", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema_version"] == "1.0"
    for key in STABLE_KEYS:
        dig(data, key)
    assert data["model"]["params_total"] == 70_553_706_496
    assert data["memory"]["kv_cache_bytes"] == 8192 * 320 * 1024
    assert data["fits"] is False  # 16 sequences of 8192 tokens do not fit beside 141 GB of weights on 2 x 80 GB


def test_profile_table(tmp_path):
    result = run("profile", "mixtral-8x7b", "-H", "a100-80gb-sxm", "--gpus", "2", "--dtype", "int4")
    assert result.exit_code == 0, result.output
    for text in ("Memory per device", "TPOT", "8 experts, top-2", "Decode-step rate against batch"):
        assert text in result.output
    out = tmp_path / "new" / "p.txt"  # a folder not there yet is made, as every -o does (it had been an internal error)
    written = run("profile", "gpt2", "-H", "t4", "--dtype", "fp16", "--context", "512", "-o", str(out))
    assert written.exit_code == 0 and f"wrote {out}" in written.stderr
    assert "gpt2" in out.read_text()
    # the header names every parallel layout the request sets
    layout = run("profile", "qwen3-30b-a3b", "--gpus", "4", "--ep", "4", "--attention-dp", "4")
    assert "attention dp 4, ep 4" in " ".join(layout.output.split())


def test_profile_defaults_run_without_arguments():
    result = run("profile", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["model"]["name"] == "llama-3.1-8b" and data["hardware"]["id"] == "h100-sxm"


def test_profile_config_file_and_model_folder(tmp_path, catalog_entries):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(catalog_entries["qwen2.5-0.5b"]["config"]))
    data = json.loads(run("profile", str(cfg), "--hardware", "l4", "--dtype", "bf16", "--context", "2048",
                          "--json").output)
    assert data["model"]["params_total"] == 494_032_768
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(cfg.read_text())
    result = run("profile", str(folder), "--hardware", "local", "--context", "1024", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hardware"]["id"] == "local"


def test_aliases_and_hub_ids_of_catalog_models_work_offline():
    data = json.loads(run("profile", "meta-llama/Llama-3.1-8B", "--json").output)
    assert data["model"]["name"] == "llama-3.1-8b"
    data = json.loads(run("profile", "llama-3.1-8b", "-H", "H100", "--json").output)
    assert data["hardware"]["id"] == "h100-sxm"


@pytest.mark.parametrize("args, message", [
    (["profile", "llama-3.1-8", "--json"], "did you mean: llama-3.1-8b"),
    (["profile", "llama-3.1-8b", "-H", "h100-sx"], "unknown hardware 'h100-sx'; did you mean: h100-sxm"),
    (["profile", "llama-3.1-8b", "--batch", "0"], "'--batch' / '-b': 0 is not in the range x>=1"),
    (["profile", "llama-3.1-8b", "--context", "-5"], "'--context' / '-c': -5 is not in the range x>=1"),
    (["profile", "llama-3.1-8b", "--gpus", "0"], "'--gpus' / '--devices': 0 is not in the range x>=1"),
    (["profile", "gpt2", "--context", "4096"], "exceeds gpt2's maximum of 1024 tokens"),
    (["profile", "llama-3.1-8b", "-H", "a100-80gb-sxm", "--dtype", "fp8"], "a100-80gb-sxm has no fp8 support"),
    (["profile", "llama-3.1-8b", "-H", "t4", "--dtype", "bf16"], "t4 has no bf16 support"),
    (["profile", "llama-3.1-8b", "-H", "tpu-v5e", "--dtype", "fp32"], "tpu-v5e has no fp32 support"),
    (["profile", "llama-3.1-8b", "--dtype", "int3"], "unknown dtype 'int3'"),
    (["profile", "llama-3.1-8b", "--gpus", "16"], "exceeds the 8 devices of one h100-sxm node"),
    (["profile", "qwen2.5-7b", "--gpus", "8"], "28 attention heads, not divisible by tensor parallel 8"),
    (["profile", "llama-3.1-8b", "--gpus", "4", "--tp", "3"], "must equal the device count 4"),
    (["profile", "llama-3.1-8b", "-H", "epyc-9004", "--gpus", "2"], "epyc-9004 has no device interconnect"),
    (["profile", "some-org/some-model"], "cannot fetch 'some-org/some-model' from the Hugging Face hub"),
    (["profile", "./missing/config.json"], "no such file or folder"),
    (["profile", "llama-3.1-8b", "--engine", "sglang", "--sampler", "flashinfer"], "--sampler picks the sampler vLLM"),
])
def test_bad_input_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_malformed_config_names_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama", "hidden_size": 64,')
    result = CliRunner().invoke(main, ["profile", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output and "not valid JSON" in result.output
    bad.write_text('{"model_type": "llama", "hidden_size": 64}')
    result = CliRunner().invoke(main, ["profile", str(bad)])
    assert result.exit_code == 2 and "num_hidden_layers" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["profile", str(empty)])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_debug_shows_the_traceback():
    result = CliRunner().invoke(main, ["profile", "nope-model", "--debug"])
    assert result.exit_code != 0 and result.exception is not None


def test_debug_keeps_an_infeasible_answer_an_answer():
    """Nothing meeting the workload is exit 3 with the report, --debug or not: not a fault to trace."""
    args = ["advise", "llama-3.1-8b", "--hardware", "rtx-4090", "--workload", "rag-long-context", "--gpus", "1"]
    plain, debug = CliRunner().invoke(main, args), CliRunner().invoke(main, [*args, "--debug"])
    assert plain.exit_code == debug.exit_code == 3, debug.output
    assert "Traceback" not in debug.output and isinstance(debug.exception, SystemExit)


def test_catalog_listings():
    result = run("catalog", "models")
    assert result.exit_code == 0 and "deepseek-v3" in result.output
    models = json.loads(run("catalog", "models", "--json").output)
    assert len(models) >= 20 and {"name", "params_total", "aliases"} <= set(models[0])
    hardware = json.loads(run("catalog", "hardware", "--json").output)
    assert {h["id"] for h in hardware} >= {"h100-sxm", "mi300x", "tpu-v5e", "epyc-9004"}
    assert "h100-sxm" in run("catalog", "hardware").output
    engines = {e["name"]: e for e in json.loads(run("catalog", "engines", "--json").output)}
    assert engines["llama.cpp"]["kernels"]["int4"] == "Q4_K_M" and engines["vllm"]["kernels"]["int4"] == "marlin"
    assert not engines["gpt-fast"]["planned"] and engines["gpt-fast"]["runtime"] == "compiled"
    assert "profile only" in run("catalog", "engines").output
    # the release each engine's plans are priced at, per backend: its configs' image
    assert engines["vllm"]["deployed"] == {"cuda": "0.10.2", "rocm": "0.10.1"} and not engines["gpt-fast"]["deployed"]
    # ... and its defaults are that release's, as advise marks them (TensorRT-LLM 1.0 turned CUDA graphs on)
    assert "cuda-graphs" in engines["trtllm"]["defaults"]


@pytest.mark.parametrize("args", [["advise", "llama-3.1-8b", "-H", "h100-sxm", "--engine", "vllm==0.11.0"],
                                  ["configs", "llama-3.1-8b", "-H", "h100-sxm", "--engine", "vllm==0.11.0", "-o", "x"],
                                  ["configs", "llama-3.1-8b", "-H", "h100-sxm", "--engine", "compose",
                                   "--serving-engine", "sglang==0.5.6", "-o", "x"]])
def test_a_plan_refuses_a_pinned_engine_and_says_where_releases_are_predicted(args, tmp_path):
    args = [str(tmp_path / a) if a == "x" else a for a in args]
    result = run(*args)
    assert result.exit_code == 2 and "priced at the release its deployment configs run" in result.output
    assert "optiplan profile --engine " in result.output and not (tmp_path / "x").exists()


def test_configs_on_a_mac_render_the_engine_that_runs_there(tmp_path):
    # no --engine: the one advise plans for there (llama.cpp), not vLLM's refusal
    result = run("configs", "llama-3.2-3b", "-H", "m3-max", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "llamacpp" / "serve.sh").exists() and not (tmp_path / "out" / "vllm").exists()


@pytest.mark.parametrize("args", [["calibrate"], ["apply", "x", "-t", "weight-int8", "-o", "y"], ["bench", "x"],
                                  ["verify", "x", "y"]])
def test_commands_that_run_models_say_how_to_install_torch_on_the_core_install(args):
    """On `pip install .` alone (no torch), a measuring command gives one line and exit 2, not a traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "from optiplan.planner.cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: this command runs models and needs") and "optiplan[torch]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_default_context_is_no_longer_than_the_model_takes():
    # GPT-2 takes 1,024 tokens: `profile gpt2` without --context profiles that, where it once failed on 4,096
    result = run("profile", "gpt2", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["request"]["context"] == 1024
    assert json.loads(run("profile", "llama-3.1-8b", "--json").output)["request"]["context"] == 4096
    assert run("profile", "gpt2", "--context", "4096").exit_code != 0  # asked for: still refused
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    assert profile(ProfileRequest(model="gpt2", hardware="h100-sxm")).request.context == 1024  # the API, the service


@pytest.mark.parametrize("args, message", [
    (("--group-size", "64"), "bf16 weights have none"),
    (("--scheduling", "static"), "--scheduling is for request-level figures"),
    (("--slo-ttft-ms", "200"), "--slo-ttft-ms is for request-level figures"),
    (("--repeats", "3"), "give --measure too"),
])
def test_options_that_would_change_nothing_are_refused(args, message):
    result = run("profile", "llama-3.1-8b", *args)
    assert result.exit_code != 0 and message in result.output


def test_formats_and_bounds_are_checked_by_the_options_that_set_them():
    assert CliRunner().invoke(main, ["advise", "llama-3.1-8b", "--format", "markdown"]).output.startswith(
        "# optiplan advice")
    assert json.loads(CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--format", "json"]).output)["model"]
    both = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--format", "text", "--json"])
    assert both.exit_code == 2 and "give one" in both.output
    gpus = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--gpus", "0"])
    assert gpus.exit_code == 2 and "'--gpus'" in gpus.output  # the option's name, not the schema's field
    loss = CliRunner().invoke(main, ["advise", "llama-3.1-8b", "--max-quality-loss", "-1%"])
    assert loss.exit_code == 2 and "quality budget '-1%': a loss allowed is 0% (lossless) or more" in loss.output
    # every bounded number is bounded by its option, which names itself (they had answered "max_running: Input
    # should be greater than or equal to 1", the schema's field)
    for option, value, command in (("--max-running", "0", ["profile"]), ("--gpu-layers", "-3", ["profile"]),
                                   ("--cached-tokens", "-1", ["profile"]), ("--host-link-gbps", "0", ["profile"]),
                                   ("--slo-itl-ms", "0", ["profile"]), ("--num-requests", "0", ["profile"]),
                                   ("--warmup", "-1", ["bench", "qwen2.5-0.5b", "-o", "x.json"]),
                                   ("--timeout", "0", ["bench", "qwen2.5-0.5b", "-o", "x.json"]),
                                   ("--confidence", "0.4", ["gate", "a.json", "b.json"])):
        bad = CliRunner().invoke(main, [*command, option, value])
        assert bad.exit_code == 2 and f"Invalid value for '{option}'" in bad.output, (option, bad.output)


def test_profile_says_where_its_engine_cannot_run_the_setup_and_drops_the_bands():
    """profile prices any format on any engine (a what-if); where the engine has no option for it (vLLM's int4 KV
    cache, SGLang's int8 weight-only, vLLM's draft model), it says so as advise does and shows no accuracy band: the
    bands were measured on setups the engines run."""
    base = ["profile", "llama-3.1-8b", "-H", "h100-sxm", "--json"]
    for extra, technique in ((["--engine", "vllm", "--kv-dtype", "int4"], "kv-int4"),
                             (["--engine", "sglang", "--dtype", "int8"], "weight-int8"),
                             (["--engine", "vllm", "--speculative", "draft", "--draft", "llama-3.2-1b", "--spec-tokens",
                               "4", "--acceptance", "0.7"], "spec-draft")):
        result = run(*base, *extra)
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert any(f"has no option for {technique}" in w for w in document["warnings"]), technique
        assert document["accuracy"] == {}
    runs = json.loads(run(*base, "--engine", "vllm", "--kv-dtype", "fp8").stdout)
    assert not any("has no option" in w for w in runs["warnings"]) and runs["accuracy"]
