"""`optiplan bench` on the committed tiny models (CPU) and against a local fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from optiplan.planner.ci.bench import PROSE, build_prompts, prefix_agreement
from optiplan.planner.cli.gate import bench, gate
from optiplan.planner.schema.bench import BenchResult

MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"
TARGET, DRAFT = str(MODELS / "target"), str(MODELS / "draft")


def run_bench(args: list[str]):
    return CliRunner().invoke(bench, [*args, "--quiet"])


def load(path) -> BenchResult:
    return BenchResult.model_validate_json(Path(path).read_text())


# ------------------------------------------------------------------------------------------- pure parts


def test_prompts_are_fixed_text_of_the_asked_length():
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TARGET)
    prompts = build_prompts(3, 40, tok)
    assert len(set(prompts)) == 3 and prompts == build_prompts(3, 40, tok)
    for p in prompts:
        assert abs(len(tok(p, add_special_tokens=False).input_ids) - 40) <= 1
        assert p.split()[0] in PROSE
    words = build_prompts(2, 100)  # an endpoint: no tokenizer, about 0.75 words per token
    assert all(len(p.split()) == 75 for p in words)


def test_prefix_agreement_counts_the_shared_prefix():
    assert prefix_agreement([[1, 2, 3, 4]], [[1, 2, 3, 4]]) == 1.0
    assert prefix_agreement([[1, 2, 3, 4], [5, 6, 7, 8]], [[1, 2, 9, 4], [5, 6, 7, 8]]) == pytest.approx(0.75)
    assert prefix_agreement([[1, 2]], [[3, 2]]) == 0.0


# ------------------------------------------------------------------------------------------- models


def test_bench_a_model_keeps_every_sample(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    res = run_bench([TARGET, "-w", "smoke", "--repeat", "3", "--threads", "1", "--eval-tokens", "256",
                     "-o", str(out)])
    assert res.exit_code == 0, res.output
    r = load(out)
    assert r.target_kind == "model" and r.workload.name == "smoke" and r.workload.repeats == 3
    assert (r.workload.prompts, r.workload.prompt_tokens, r.workload.max_new_tokens) == (2, 16, 8)
    for name in ("ttft_ms", "tpot_ms", "tokens_per_s"):
        m = r.metrics[name]
        assert len(m.samples) == 6 and m.rounds == list(range(6)) and m.noisy and all(x > 0 for x in m.samples)
        assert m.summary.n == 6 and m.summary.min <= m.summary.median <= m.summary.max
    # each sample is one generation of 8 tokens: its whole time is the first token's plus 7 decode steps (the
    # medians need not order so: a 16-token prefill can take no longer than one decode step of this model)
    ttft, tpot, tps = (r.metrics[k].samples for k in ("ttft_ms", "tpot_ms", "tokens_per_s"))
    assert [8000 / x for x in tps] == pytest.approx([a + 7 * b for a, b in zip(ttft, tpot)], rel=1e-6)
    assert 1 < r.metrics["perplexity"].samples[0] < 1024  # better than chance over a 1024-token vocabulary
    assert r.metrics["peak_memory_bytes"].samples[0] > 100e6 and not r.metrics["peak_memory_bytes"].noisy
    env = r.environment
    assert env.device == "cpu" and env.threads == 1 and env.dtype == "bfloat16"  # as the test model is stored
    assert {"optiplan", "torch", "transformers"} <= set(env.libraries) and env.hardware_fingerprint
    same = CliRunner().invoke(gate, [str(out), str(out), "--format", "json"])
    assert same.exit_code == 0, same.output
    report = json.loads(same.stdout)
    # one run against itself: the same samples, a pass on every metric
    assert report["verdict"] == "pass" and all(v["change_pct"] == 0 for v in report["metrics"])
    assert all(v["method"] == "the same samples" for v in report["metrics"])


def test_interleaved_models_pair_rounds_and_the_gate_sees_worse_quality(tmp_path):
    pytest.importorskip("torch")
    t, d, ref = tmp_path / "target.json", tmp_path / "draft.json", tmp_path / "ref.json"
    res = run_bench([TARGET, DRAFT, "-w", "smoke", "--repeat", "2", "--threads", "1", "--no-memory",
                     "--eval-tokens", "256", "--save-reference", str(ref), "-o", str(t), "-o", str(d)])
    assert res.exit_code == 0, res.output
    rt, rd = load(t), load(d)
    assert rt.session_id == rd.session_id and rt.interleaved_with == [DRAFT] and rd.interleaved_with == [TARGET]
    assert rt.metrics["tpot_ms"].rounds == rd.metrics["tpot_ms"].rounds == [0, 1, 2, 3]
    assert rt.metrics["prefix_agreement"].samples == [1.0]
    agreement = rd.metrics["prefix_agreement"].samples[0]
    assert 0 <= agreement <= 1 and rt.quality["greedy_reference"] == TARGET
    # the one-layer draft is much worse: the gate fails it on quality, and pairs the timings (which way they go is
    # a timing, never asserted in a test: DESIGN.md)
    assert rd.metrics["perplexity"].samples[0] > 1.05 * rt.metrics["perplexity"].samples[0]
    verdict = CliRunner().invoke(gate, [str(t), str(d), "--format", "json"])
    assert verdict.exit_code == 1, verdict.output
    report = json.loads(verdict.stdout)
    by_metric = {v["metric"]: v for v in report["metrics"]}
    assert by_metric["perplexity"]["verdict"] == "regression"
    assert by_metric["tpot_ms"]["method"].startswith("paired")
    # the saved reference gives the same agreement when the draft is benched alone
    again = tmp_path / "again.json"
    res = run_bench([DRAFT, "-w", "smoke", "--repeat", "1", "--no-memory", "--eval-tokens", "64",
                     "--reference", str(ref), "-o", str(again)])
    assert res.exit_code == 0, res.output
    assert load(again).metrics["prefix_agreement"].samples == [agreement]
    other = run_bench([DRAFT, "-w", "chat", "--max-new-tokens", "4", "--prompt-tokens", "8", "--repeat", "1",
                       "--no-memory", "--reference", str(ref)])
    assert other.exit_code == 2 and "made for another workload" in other.stderr


@pytest.mark.parametrize("args, message", [
    ([], "nothing to benchmark"),
    (["/no/such/model", "-w", "smoke"], "does not exist"),
    ([TARGET, "-w", "chatt"], "unknown bench workload 'chatt'; did you mean: chat"),
    ([TARGET, DRAFT], "one --output file each"),
    ([TARGET, "-o", "a.json", "-o", "b.json"], "1 target(s) but 2 --output"),
    ([TARGET, "--prompt-tokens", "4000"], "exceed the model's 2048 positions"),
    (["--endpoint", "localhost:8000"], "give the server's base URL"),
])
def test_bad_bench_requests_exit_2(args, message):
    res = run_bench(args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output


# ------------------------------------------------------------------------------------------- endpoints


class FakeServer(BaseHTTPRequestHandler):
    """/v1/models and streamed /v1/completions: first text after FIRST_S, then one token per STEP_S."""

    FIRST_S, STEP_S = 0.02, 0.005
    mode = "ok"  # ok | strict (rejects vLLM extensions) | slow | whole (all the text in one chunk)
    bodies: ClassVar[list[dict]] = []

    def log_message(self, *args):
        pass

    def _json(self, code: int, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if self.mode == "strict" and "ignore_eos" in body:
            self._json(400, {"error": {"message": "extra fields not permitted: ignore_eos"}})
            return
        try:
            self._stream(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def _stream(self, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        time.sleep(2.0 if self.mode == "slow" else self.FIRST_S)
        if self.mode == "whole":
            text = "".join(f" t{i}" for i in range(body["max_tokens"]))
            self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, 'text': text}]})}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        for i in range(body["max_tokens"]):
            if i:
                time.sleep(self.STEP_S)
            self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, 'text': f' t{i}'}]})}\n\n".encode())
            self.wfile.flush()
        if "stream_options" in body:
            usage = {"choices": [], "usage": {"completion_tokens": body["max_tokens"]}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture()
def server():
    FakeServer.bodies, FakeServer.mode = [], "ok"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_endpoint_streams_give_ttft_and_tpot(server, tmp_path):
    out = tmp_path / "served.json"
    res = run_bench(["--endpoint", server + "/v1", "-w", "smoke", "--repeat", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    r = load(out)
    assert r.target_kind == "endpoint" and r.environment.server_model == "fake-model"
    assert r.environment.device == "remote" and "torch" not in r.environment.libraries
    assert set(r.metrics) == {"ttft_ms", "tpot_ms", "tokens_per_s"}  # no quality or memory from a server
    ttft, tpot = r.metrics["ttft_ms"], r.metrics["tpot_ms"]
    assert len(ttft.samples) == 4 and min(ttft.samples) >= FakeServer.FIRST_S * 1e3
    assert FakeServer.STEP_S * 1e3 <= tpot.summary.median < FakeServer.STEP_S * 1e3 * 3
    assert len(FakeServer.bodies) == 1 + 4  # one warm-up, 2 rounds x 2 prompts
    body = FakeServer.bodies[-1]
    assert body["model"] == "fake-model" and body["max_tokens"] == 8 and body["stream"] is True
    assert body["temperature"] == 0 and body["ignore_eos"] is True


def test_endpoint_without_vllm_extensions_still_works(server, tmp_path):
    FakeServer.mode = "strict"
    out = tmp_path / "served.json"
    res = run_bench(["--endpoint", server, "-w", "smoke", "--repeat", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    r = load(out)
    assert "rejected ignore_eos" in r.notes[0] and len(r.metrics["tpot_ms"].samples) == 2
    assert "ignore_eos" not in FakeServer.bodies[-1]


def test_endpoint_requests_are_bounded_and_errors_are_one_line(server):
    res = run_bench(["--endpoint", server, "-w", "smoke", "--repeat", "5", "--max-requests", "5"])
    assert res.exit_code == 2 and "would send 12 requests, more than --max-requests 5" in res.stderr
    assert FakeServer.bodies == []  # refused before sending anything
    FakeServer.mode = "slow"
    res = run_bench(["--endpoint", server, "-w", "smoke", "--repeat", "1", "--timeout", "0.5"])
    assert res.exit_code == 2 and res.stderr.startswith("error: endpoint") and "Traceback" not in res.output
    refused = run_bench(["--endpoint", "http://127.0.0.1:9", "-w", "smoke", "--timeout", "2"])
    assert refused.exit_code == 2 and "endpoint http://127.0.0.1:9" in refused.stderr


def test_an_endpoint_that_does_not_stream_token_by_token_is_refused_not_timed_at_zero(server):
    # a TPOT of 0 would be written and then refused by the gate ("must be positive"): say so at bench time
    FakeServer.mode = "whole"
    res = run_bench(["--endpoint", server, "-w", "smoke", "--repeat", "1"])
    assert res.exit_code == 2 and "came in one chunk" in res.stderr and "Traceback" not in res.output


def test_a_model_folder_without_a_tokenizer_is_one_sentence_or_takes_tokenizer(tmp_path):
    pytest.importorskip("torch")
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(Path(TARGET) / name, bare / name)
    result = run_bench([str(bare), "--repeat", "1", "--no-quality", "--no-memory", "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "no tokenizer" in result.output and "--tokenizer" in result.output
    assert "Traceback" not in result.output
    ok = run_bench([str(bare), "--tokenizer", TARGET, "--repeat", "1", "--warmup", "0", "--prompt-tokens", "8",
                    "--max-new-tokens", "4", "--no-quality", "--no-memory", "-o", str(tmp_path / "r.json")])
    assert ok.exit_code == 0, ok.output
    assert load(tmp_path / "r.json").metrics["tpot_ms"].samples
