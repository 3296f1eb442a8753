"""The HTTP API answers with the CLI's own JSON for the CLI's own requests, and every bad request gets one JSON
error (never a traceback): names outside the server's folders, bad bodies, unknown routes, oversized bodies."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from optiplan.planner.deploy.config import LLAMA_CPP_BUILD
from optiplan.planner.schema.advice import AdviseRequest
from optiplan.planner.schema.core import ProfileRequest

ADVISE = {"model": "llama-3.1-8b", "hardware": "l4", "num_devices": 1, "workload": "chat"}


def one_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "status"} and body["status"] == status
    assert "Traceback" not in response.text and "File \"" not in response.text
    return body["error"]


def test_healthz_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    assert {"/v1/profile", "/v1/advise", "/v1/configs", "/v1/jobs", "/v1/jobs/{job_id}/events"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_health_metrics_and_jobs_answer_while_many_advice_requests_compute(client, monkeypatch):
    """Advice computes in a few threads of its own; requests beyond them wait on the event loop, not in the thread
    pool the other routes run in. 45 distinct advice requests had taken every pool thread (they waited for a
    computing slot there), and a liveness probe waited behind them."""
    import threading
    import time

    from optiplan.planner.service import calls

    release, entered = threading.Event(), []

    def blocked(request, roots, cache):  # an advice computation that takes until the test releases it
        entered.append(request.model)
        release.wait(20)
        return b"{}"

    monkeypatch.setattr(calls, "advice_json", blocked)
    askers = [threading.Thread(target=client.post, args=("/v1/advise", ), kwargs={"json": ADVISE | {
        "concurrency": n + 1}}) for n in range(45)]
    for thread in askers:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(entered) < calls.ADVICE_THREADS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert len(entered) == calls.ADVICE_THREADS  # the others wait, holding no thread
        answers = {}

        def ask(path):
            answers[path] = client.get(path).status_code

        probes = [threading.Thread(target=ask, args=(path,)) for path in ("/healthz", "/metrics", "/v1/jobs")]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join(5)
        assert answers == {"/healthz": 200, "/metrics": 200, "/v1/jobs": 200}
    finally:
        release.set()
        for thread in askers:
            thread.join(30)


def test_advise_and_profile_return_what_the_library_returns_for_the_same_request(client):
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.plan.advise import advise

    response = client.post("/v1/advise", json=ADVISE)
    assert response.status_code == 200
    assert response.json() == json.loads(advise(AdviseRequest(**ADVISE)).model_dump_json())
    # a request that names no device gets the CLI's default device, not a hardware search
    from optiplan.planner.cli.main import DEFAULT_HARDWARE

    assert AdviseRequest(model="llama-3.1-8b").hardware == DEFAULT_HARDWARE == "h100-sxm"
    request = {"model": "llama-3.1-8b", "hardware": "l4", "context": 8192, "batch": 4}
    response = client.post("/v1/profile", json=request)
    assert response.json() == json.loads(profile(ProfileRequest(**request)).model_dump_json())
    # a benchmark run with spread prompts whose prefixes are in the prefix cache: the same fields as the CLI's
    run = {"model": "llama-3.1-8b", "hardware": "l4", "engine": "vllm", "input_tokens": 2000, "output_tokens": 200,
           "concurrency": 4, "num_requests": 16, "length_spread": 1.0, "prompt_spread": 1.0, "warm_requests": 1,
           "cached_tokens": 500}
    response = client.post("/v1/profile", json=run)
    assert response.status_code == 200
    assert response.json() == json.loads(profile(ProfileRequest(**run)).model_dump_json())
    assert "first 500 tokens found in the prefix cache" in response.json()["requests"]["scheduling"]


def test_repeated_advice_is_served_from_the_cache(client):
    def counts():
        lines = [line.split() for line in client.get("/metrics").text.splitlines()
                 if line.startswith("optiplan_advice_cache{")]
        return {name.split('"')[1]: int(value) for name, value in lines}

    first = client.post("/v1/advise", json=ADVISE).json()
    after_first = counts()
    second = client.post("/v1/advise", json=ADVISE).json()
    after_second = counts()
    assert first == second
    assert after_first["misses"] >= 1 and after_second["misses"] == after_first["misses"]
    assert after_second["hits"] == after_first["hits"] + 1


def test_concurrent_misses_on_one_request_compute_it_once():
    import threading
    import time

    from optiplan.planner.service.calls import AdviceCache

    cache, calls, results = AdviceCache(entries=2), [], []

    def make():
        calls.append(1)
        time.sleep(0.2)
        return "advice"

    threads = [threading.Thread(target=lambda: results.append(cache.get(("k", "1"), make))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["advice"] * 8 and len(calls) == 1
    nested = []  # a body computed from advice: the outer miss holds no computing slot, so 16 at once finish

    def body(i):
        advice = cache.get(("advice", str(i)), lambda: f"advice {i}", leaf=True)
        nested.append(advice.upper())

    threads = [threading.Thread(target=lambda i=i: cache.get(("body", str(i)), lambda: body(i)), daemon=True)
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)  # a deadlock fails the assertion below instead of hanging the suite
    assert sorted(nested) == sorted(f"ADVICE {i}" for i in range(16))
    for i in range(5):  # bounded: the oldest entries leave
        cache.get(("k", str(i + 2)), lambda: "x")
    assert cache.stats()["entries"] == 2 and cache.peek(("k", "1")) is None


def test_a_model_folder_in_the_models_dir_is_advised_by_its_name(client):
    response = client.post("/v1/profile", json={"model": "tiny", "hardware": "l4", "context": 1024})
    assert response.status_code == 200, response.text
    assert response.json()["model"]["hidden_size"] == 192
    assert client.get("/v1/models").json() == {"folders": ["tiny"]}


def test_an_infeasible_workload_is_422_with_the_document(client):
    response = client.post("/v1/advise", json={"model": "llama-3.1-405b", "hardware": "l4", "num_devices": 1})
    message = one_error(response, 422)
    assert "fit" in message or "meet" in message
    assert response.json()["document"]["feasible"] is False
    # its suggestion names the request's fields, not the CLI's options
    assert '"num_devices": ' in message and "--gpus" not in message and "--hardware" not in message, message


def test_configs_as_json_and_as_a_zip(client):
    body = {"model": "llama-3.1-8b", "hardware": "l4", "target": "vllm"}
    files = client.post("/v1/configs", json=body).json()["files"]
    assert "vllm/serve.sh" in files and "README.md" in files
    response = client.post("/v1/configs", json=body | {"target": "all"}, headers={"Accept": "application/zip"})
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = zf.namelist()
        assert "vllm/serve.sh" in names and "README.md" in names
        assert zf.getinfo("vllm/serve.sh").external_attr >> 16 == 0o755
    assert "unknown engine" in one_error(client.post("/v1/configs", json=body | {"target": "nginx"}), 400)


def test_configs_without_a_target_render_the_engine_advise_plans_for(client):
    # vLLM on a GPU; on a Mac, where vLLM does not run, llama.cpp (as `advise` plans there), not a refusal
    gpu = client.post("/v1/configs", json={"model": "llama-3.2-3b", "hardware": "l4"}).json()
    assert gpu["target"] == "vllm" and "vllm/serve.sh" in gpu["files"]
    mac = client.post("/v1/configs", json={"model": "llama-3.2-3b", "hardware": "m3-max"}).json()
    assert mac["target"] == "llama.cpp" and "llamacpp/serve.sh" in mac["files"]
    # no container reaches a Mac's GPU: compose is refused there, saying why and what to run instead
    refused = one_error(client.post("/v1/configs", json={"model": "llama-3.2-3b", "hardware": "m3-max",
                                                         "target": "compose"}), 400)
    assert "a container on a Mac runs in a Linux VM without Metal" in refused and "serve.sh" in refused
    # an engine named that does not run there is still refused, saying which do
    refused = one_error(client.post("/v1/configs", json={"model": "llama-3.2-3b", "hardware": "m3-max",
                                                         "target": "vllm"}), 400)
    assert "vllm does not run on m3-max" in refused and "llama.cpp" in refused
    # `engine` (advise's) would be ignored here, each engine's files being planned for it: refused, naming `target`
    ignored = one_error(client.post("/v1/configs", json={"model": "llama-3.2-3b", "hardware": "l4",
                                                         "engine": "sglang"}), 422)
    assert '"target"' in ignored and '"serving_engine"' in ignored


def test_containers_run_an_image_built_for_the_device(client):
    # llama.cpp on a CPU: its CPU build, and a pod that asks for no GPU
    body = {"model": "llama-3.2-1b", "hardware": "epyc-9004", "serving_engine": "llama.cpp"}
    k8s = client.post("/v1/configs", json=body | {"target": "kubernetes"}).json()["files"]["kubernetes/deployment.yaml"]
    assert f'"ghcr.io/ggml-org/llama.cpp:server-{LLAMA_CPP_BUILD}"' in k8s and "nvidia.com/gpu" not in k8s
    compose = client.post("/v1/configs", json=body | {"target": "compose"}).json()["files"]
    assert f'"ghcr.io/ggml-org/llama.cpp:server-{LLAMA_CPP_BUILD}"' in compose["compose/docker-compose.yaml"]
    # vLLM's images are GPU builds: no pod of one on a CPU node
    refused = one_error(client.post("/v1/configs", json=body | {"target": "kubernetes", "serving_engine": "vllm"}), 400)
    assert "no container runs vllm on epyc-9004 (cpu)" in refused
    # on an NVIDIA GPU the CUDA build, with the plan's GPUs requested
    gpu = client.post("/v1/configs", json={"model": "llama-3.2-1b", "hardware": "l4", "target": "kubernetes",
                                           "serving_engine": "llama.cpp"}).json()["files"]["kubernetes/deployment.yaml"]
    # a build, not the rolling tag, whose option names move under the configs (--draft-max, ggml-org/llama.cpp#22397)
    assert f'"ghcr.io/ggml-org/llama.cpp:server-cuda-{LLAMA_CPP_BUILD}"' in gpu and '"nvidia.com/gpu": 1' in gpu


def test_a_side_by_side_report_checks_both_devices_before_either_frame_loads(client):
    for query in ({"model": "llama-3.1-8b", "hardware": "bogus", "compare": "a100-80gb-sxm"},
                  {"model": "llama-3.1-8b", "hardware": "l4", "compare": "bogus"}):
        response = client.get("/report", params=query)
        assert response.status_code == 400 and "unknown device 'bogus'" in response.text, query


def test_configs_all_renders_each_engine_from_its_own_plan_as_the_cli_does(client, tmp_path):
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    # DeepSeek-V3 on 8 MI300X for chat: llama.cpp's own best plan misses the TPOT; TensorRT-LLM (CUDA) is skipped
    body = {"model": "deepseek-v3", "hardware": "mi300x", "num_devices": 8, "workload": "chat", "target": "all"}
    answer = client.post("/v1/configs", json=body).json()
    assert any("llama.cpp's own plan misses the workload" in line for line in answer["notes"])
    assert any(line.startswith("trtllm:") for line in answer["skipped"])
    index = answer["files"]["README.md"]  # the index says which plan each folder renders, and the notes
    assert "Each of llama.cpp, sglang, tgi renders the plan made for it" in index
    assert all(line in index for line in answer["notes"] + answer["warnings"])
    assert "trtllm" not in index.split("## Targets not rendered")[0].split("renders the plan made for it")[0]
    out = CliRunner().invoke(main, ["configs", "deepseek-v3", "-H", "mi300x", "--gpus", "8", "--workload", "chat",
                                    "-e", "all", "-o", str(tmp_path / "cli")])
    assert out.exit_code == 0, out.output
    written = {str(path.relative_to(tmp_path / "cli")): path.read_text()
               for path in (tmp_path / "cli").rglob("*") if path.is_file()}
    assert written == answer["files"]  # the same files, from the same plans
    for line in answer["notes"] + answer["warnings"]:
        assert line in out.output


def test_configs_all_on_auto_hardware_keeps_every_engine_on_the_serving_engines_device(client):
    body = {"model": "llama-3.1-8b", "hardware": "auto", "workload": "chat", "target": "all"}
    files = client.post("/v1/configs", json=body).json()["files"]
    readmes = [text for rel, text in files.items() if rel.endswith("/README.md")]
    assert len(readmes) >= 3
    # each engine's README names the device the serving engine's plan picked, none a pick of its own
    advice = client.post("/v1/advise", json={"model": "llama-3.1-8b", "hardware": "auto", "workload": "chat",
                                             "engine": "vllm"}).json()
    hardware = advice["hardware"]
    assert all(f"on {hardware['count']} x {hardware['id']} with" in text for text in readmes)


@pytest.mark.parametrize("what", ["models", "hardware", "workloads", "engines", "techniques"])
def test_catalog_lists(client, what):
    rows = client.get(f"/v1/catalog/{what}").json()
    assert rows and isinstance(rows, list)
    key = "name" if what in ("models", "workloads", "engines") else "id"
    assert all(key in row for row in rows)


@pytest.mark.parametrize("name, status, words", [
    ("/etc/passwd", 403, "absolute paths are refused"),
    ("../models/tiny", 403, "'..' is refused"),
    ("tiny/../../x", 403, "'..' is refused"),
    ("C:\\models", 403, "absolute paths"),
    ("meta-llama/Not-A-Model", 404, "neither a catalog model"),
    ("nothing-here", 404, "neither a catalog model"),
])
def test_model_names_stay_inside_the_models_dirs(client, name, status, words):
    assert words in one_error(client.post("/v1/profile", json={"model": name, "hardware": "l4"}), status)
    # a draft model is a model name too: a path outside had been read (and a hub id fetched) for it
    draft = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "speculative": "draft", "spec_tokens": 4,
             "acceptance": 0.7, "input_tokens": 100, "output_tokens": 100, "draft_model": name}
    assert words in one_error(client.post("/v1/profile", json=draft), status)
    assert client.post("/v1/profile", json=draft | {"draft_model": "llama-3.2-1b"}).status_code == 200


def test_a_symlink_leading_out_of_the_models_dir_is_refused(client, models_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text((models_dir / "tiny" / "config.json").read_text())
    (models_dir / "escape").symlink_to(outside, target_is_directory=True)
    assert "leads outside" in one_error(client.post("/v1/profile", json={"model": "escape", "hardware": "l4"}), 403)
    job = {"kind": "apply", "model": "escape", "techniques": ["weight-int8"], "output": "x"}
    assert "leads outside" in one_error(client.post("/v1/jobs", json=job), 403)


def test_hardware_and_workload_files_are_refused(client, models_dir):
    error = one_error(client.post("/v1/advise", json={"model": "tiny", "hardware": "/etc/hw.yaml"}), 400)
    assert "catalog device" in error
    error = one_error(client.post("/v1/advise", json=ADVISE | {"workload": "/etc/passwd.yaml"}), 400)
    assert "preset" in error


@pytest.mark.parametrize("body, status, words", [
    ("{not json", 422, "not valid JSON"),
    ("[1, 2]", 422, "must be a JSON object"),
    ('{"hardware": "l4"}', 422, "model: Field required"),
    ('{"model": "llama-3.1-8b", "hardware": "l4", "surprise": 1}', 422, "surprise: Extra inputs"),
    # a number out of range is the request model's to refuse, as every other field it checks: 422
    ('{"model": "llama-3.1-8b", "hardware": "l4", "num_devices": 0}', 422, "num_devices: Input should be greater"),
    ('{"model": "llama-3.1-8b", "hardware": "l4", "concurrency": 0}', 422, "concurrency: Input should be greater"),
    ('{"model": "llama-3.1-8b", "hardware": "l4", "goal": "speed"}', 422, "goal: Input should be 'memory'"),
    ('{"model": "llama-3.1-8b", "hardware": "no-such-gpu"}', 400, "the service takes a catalog device"),
    ('{"model": "llama-3.1-8b", "hardware": "l4", "engine": "vllm==0.11.0"}', 422,
     "engine: Value error, 'vllm==0.11.0': a plan is priced at the release its deployment configs run"),
])
def test_bad_bodies_get_one_json_error(client, body, status, words):
    response = client.post("/v1/advise", content=body, headers={"Content-Type": "application/json"})
    assert words in one_error(response, status)


def test_unknown_routes_methods_and_jobs(client):
    assert "no route /v2/x" in one_error(client.get("/v2/x"), 404)
    assert "not allowed" in one_error(client.put("/v1/advise"), 405)
    assert "no job" in one_error(client.get("/v1/jobs/0123456789abcdef"), 404)
    assert "no job" in one_error(client.delete("/v1/jobs/nope"), 404)
    # a mistyped model gets the CLI's suggestions too
    assert "did you mean: llama-3.1-8b" in one_error(client.post("/v1/profile", json={"model": "llama-3.1-8bb",
                                                                                     "hardware": "l4"}), 404)


def test_an_internal_error_is_one_line_with_an_id_and_no_detail(make_client, monkeypatch, caplog, models_dir):
    from optiplan.planner.service import calls

    client = make_client(raise_server_exceptions=False)  # as a real server: the error answered, then logged

    def broken(*args, **kwargs):
        raise ZeroDivisionError(f"cannot divide while reading {models_dir}/tiny")

    monkeypatch.setattr(calls, "run_profile", broken)
    response = client.post("/v1/profile", json={"model": "llama-3.1-8b", "hardware": "l4"})
    error = one_error(response, 500)
    incident = response.json()["id"]
    assert error == f"internal error (id {incident}); the server's log has the details under that id"
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert logged and logged[0].exc_info[0] is ZeroDivisionError  # the traceback, server-side, under the id
    # answered inside the guard: the page headers as on every answer, and counted in /metrics
    assert response.headers["x-frame-options"] and response.headers["cache-control"].startswith("private")
    metrics = client.get("/metrics").text
    assert 'optiplan_requests_total{method="POST",route="/v1/profile",status="500"} 1' in metrics


def test_library_errors_name_the_servers_folders_by_label(client, models_dir):
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "config.json").write_text('{"model_type": "llama",')
    error = one_error(client.post("/v1/profile", json={"model": "broken", "hardware": "l4"}), 400)
    assert error.startswith("models:broken/config.json: not valid JSON")
    assert str(models_dir) not in error and str(models_dir.parent) not in error


def test_job_results_and_logs_name_the_servers_folders_by_label(tmp_path, models_dir):
    import os

    from optiplan.planner.machine.calibration import calibration_path
    from optiplan.planner.service.jobs import Executor
    from optiplan.planner.service.paths import Roots
    from optiplan.planner.service.store import SqliteStore, new_job

    roots = Roots.create(tmp_path / "work", [models_dir])
    store = SqliteStore(roots.workdir / "jobs.sqlite")
    job = store.claim(store.insert(new_job("apply", {"kind": "apply"}, "out")).id, "w1")
    executor = Executor(store, roots, "w1")
    home_form = str(calibration_path()).replace(os.path.expanduser("~"), "~", 1)
    result = {"source": str(models_dir / "tiny"), "out": str(roots.workdir / "out"),
              "calibration": str(calibration_path()), "note": f"kept in {home_form}"}
    done = executor._record(job, 0, {"event": "result", "result": result}, cancelled=False)
    assert done.state == "succeeded"
    assert done.result["source"] == "models:tiny" and done.result["out"] == "workdir:out"
    assert done.result["calibration"].startswith("cache:calibration/") and "~" not in done.result["note"]


def test_request_bodies_over_the_limit_are_refused_before_reading(make_client):
    client = make_client(max_body_bytes=2048)
    big = json.dumps(ADVISE | {"workload": "x" * 4096})
    assert "over the limit of 2048 bytes" in one_error(client.post("/v1/advise", content=big,
                                                                   headers={"Content-Type": "application/json"}), 413)

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(8):
            yield b" " * 1024

    response = client.post("/v1/advise", content=chunks(), headers={"Content-Type": "application/json"})
    assert "over the limit" in one_error(response, 413)
    assert client.post("/v1/advise", json=ADVISE).status_code == 200


def test_metrics_count_requests_latencies_and_jobs(client):
    client.post("/v1/advise", json=ADVISE)
    client.get("/v2/none")
    text = client.get("/metrics").text
    assert 'optiplan_requests_total{method="POST",route="/v1/advise",status="200"} 1' in text
    assert 'optiplan_requests_total{method="GET",route="unmatched",status="404"} 1' in text
    assert 'optiplan_request_seconds_count{route="/v1/advise"} 1' in text
    assert 'optiplan_jobs{state="queued"} 0' in text and 'optiplan_jobs{state="running"} 0' in text


def test_the_page_the_report_and_the_configs_zip(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="advice-form"' in page.text
    assert '<option value="tiny">tiny</option>' in page.text  # the models dir's folders are offered
    report = client.get("/report", params={"model": "llama-3.1-8b", "hardware": "l4", "workload": "chat"})
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.report.advice import render

    expected = render(advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", workload="chat")), "html")
    assert report.text == expected  # the very HTML `advise --format html` writes
    infeasible = client.get("/report", params={"model": "llama-3.1-405b", "hardware": "l4", "devices": "1"})
    assert infeasible.status_code == 422 and "Not feasible" in infeasible.text
    assert "devices 'two'" in one_error(client.get("/report", params={"model": "llama-3.1-8b", "devices": "two"}),
                                        400)
    assert "choose a model" in one_error(client.get("/report"), 400)
    # a misspelt parameter is refused, not silently dropped (gpus= once rendered one device)
    assert "unknown parameter gpus" in one_error(client.get("/report", params={"model": "llama-3.1-8b",
                                                                               "gpus": "2"}), 400)
    assert "compare: unknown device 'nosuch'" in one_error(
        client.get("/report", params={"model": "llama-3.1-8b", "compare": "nosuch"}), 400)
    configs = client.get("/configs.zip", params={"model": "llama-3.1-8b", "hardware": "l4", "target": "compose"})
    assert configs.headers["content-type"] == "application/zip"
    assert 'filename="optiplan-compose-configs.zip"' in configs.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(configs.content)) as zf:
        assert any(name.endswith(("compose.yaml", "docker-compose.yaml")) for name in zf.namelist())


def test_worker_says_in_one_line_when_the_queue_is_unreachable(tmp_path):
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    result = CliRunner().invoke(main, ["worker", "--queue", "redis://127.0.0.1:1/0", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: cannot reach the job queue at redis://127.0.0.1:1/0")
    secret = CliRunner().invoke(main, ["worker", "--queue", "redis://:s3cret-pass@127.0.0.1:1/0", "--workdir",
                                       str(tmp_path)])
    assert "redis://:***@127.0.0.1:1/0" in secret.stderr and "s3cret-pass" not in secret.stderr


def test_one_writer_per_output_whatever_the_spelling(client, monkeypatch):
    monkeypatch.setattr(client.app.state.queue, "submit", lambda job_id: None)  # stays queued: an active writer
    apply = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "verify": False}
    first = client.post("/v1/jobs", json=apply | {"output": "a"})
    assert first.status_code == 202
    for output in ("a/.", "./a", "a/sub"):
        assert "another job" in one_error(client.post("/v1/jobs", json=apply | {"output": output}), 409), output
    bench = {"kind": "bench", "models": ["tiny"], "save_reference": "a/config.json"}
    assert "another job" in one_error(client.post("/v1/jobs", json=bench), 409)
    assert client.post("/v1/jobs", json=apply | {"output": "a-b"}).status_code == 202
    assert [j["output"] for j in client.get("/v1/jobs").json()] == ["a-b", "a"]
    # calibrate rewrites this machine's one calibration file: a second one waits for the first to end
    calibrate = {"kind": "calibrate", "models": ["tiny"], "effects": False}
    assert client.post("/v1/jobs", json=calibrate).status_code == 202
    assert "is calibrating this machine" in one_error(client.post("/v1/jobs", json=calibrate | {"effects": True}), 409)


def test_no_job_replaces_a_folder_another_job_reads(client, monkeypatch, models_dir, tmp_path):
    """A verify of a workdir folder and a forced apply that replaces it cannot run at once, in either order."""
    import shutil

    monkeypatch.setattr(client.app.state.queue, "submit", lambda job_id: None)  # stays queued: active
    shutil.copytree(models_dir / "tiny", tmp_path / "work" / "done")
    verify = {"kind": "verify", "baseline": "tiny", "optimized": "done/."}
    apply = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "verify": False, "force": True}
    reader = client.post("/v1/jobs", json=verify)
    assert reader.status_code == 202
    assert client.get(reader.json()["url"]).json()["reads"] == ["done"]  # the models dir's tiny is not listed
    error = one_error(client.post("/v1/jobs", json=apply | {"output": "done"}), 409)
    assert f"another job ({reader.json()['id']}) is reading it" in error
    assert "is reading 'done'" in one_error(client.post("/v1/jobs", json=apply | {"output": "done/sub"}), 409)
    assert client.post("/v1/jobs", json=apply | {"output": "other"}).status_code == 202
    assert client.post("/v1/jobs", json=verify).status_code == 202  # two readers of one folder are fine
    assert "no such file" in one_error(client.post("/v1/jobs", json=verify | {"optimized": "other"}), 404)
    client.delete(reader.json()["url"])
    for job in client.get("/v1/jobs").json():
        if job["state"] == "queued" and job["kind"] == "verify":
            client.delete(f"/v1/jobs/{job['id']}")
    (tmp_path / "work" / "latest").symlink_to(tmp_path / "work" / "done")  # one folder by another name
    reader = client.post("/v1/jobs", json=verify)
    assert "is reading it" in one_error(client.post("/v1/jobs", json=apply | {"output": "latest"}), 409)
    client.delete(reader.json()["url"])
    writer = client.post("/v1/jobs", json=apply | {"output": "done"})
    assert writer.status_code == 202  # no reader left
    assert client.get(writer.json()["url"]).json()["output"] == "done"
    error = one_error(client.post("/v1/jobs", json=verify), 409)
    assert f"another job ({writer.json()['id']}) is writing 'done', which this job reads" in error


def test_configs_for_auto_hardware_follow_the_device_the_report_picked(client):
    from optiplan.planner.plan.advise import advise

    query = {"model": "llama-3.1-8b", "hardware": "auto", "workload": "chat", "target": "tgi"}
    picked = advise(AdviseRequest(model="llama-3.1-8b", hardware="auto", workload="chat")).hardware.id
    assert picked != "h100-sxm"  # else the test could not tell a substitution from the pick
    response = client.get("/configs.zip", params=query)
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        text = "\n".join(zf.read(name).decode() for name in zf.namelist())
    assert picked in text and "h100-sxm" not in text


def test_a_second_server_on_one_workdir_is_refused_in_one_sentence(client, tmp_path, models_dir):
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main
    from optiplan.planner.service.store import new_job

    store = client.app.state.store
    running = store.claim(store.insert(new_job("apply", {"kind": "apply"}, "out")).id, "local-1")  # the first's job
    result = CliRunner().invoke(main, ["serve", "--workdir", str(tmp_path / "work"), "--models-dir", str(models_dir),
                                       "--port", "1"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("error: another optiplan serve is already running on the workdir") and "\n" not in line
    assert store.get(running.id).state == "running"  # the first server's job was not failed by the second
    # a retry count the local queue would not honour is refused, not accepted and ignored
    retries = CliRunner().invoke(main, ["serve", "--workdir", str(tmp_path / "other"), "--max-attempts", "3"])
    assert retries.exit_code == 2 and "--max-attempts is for Redis workers" in retries.stderr


def test_names_of_the_servers_folders_themselves_and_a_bench_of_nothing_are_refused_at_once(client):
    for job in ({"kind": "verify", "baseline": "tiny", "optimized": "."},
                {"kind": "apply", "model": "./.", "techniques": ["weight-int8"], "output": "x"}):
        assert "names the server's folder itself" in one_error(client.post("/v1/jobs", json=job), 400)
    assert "give models" in one_error(client.post("/v1/jobs", json={"kind": "bench", "models": []}), 400)
    # an output named as a models-dir folder could never be named by a later job (inputs are found there first)
    shadowed = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "output": "tiny"}
    assert "choose another name" in one_error(client.post("/v1/jobs", json=shadowed), 409)


def test_answers_about_a_model_folder_name_it_by_label(client, models_dir):
    request = {"model": "tiny", "hardware": "l4", "workload": "chat"}
    answers = [client.post("/v1/profile", json={"model": "tiny", "hardware": "l4", "context": 1024}),
               client.post("/v1/advise", json=request),
               client.post("/v1/configs", json=request | {"target": "vllm"}), client.get("/report", params=request)]
    for response in answers:
        assert response.status_code == 200, response.text
        assert str(models_dir) not in response.text
    assert "models:tiny" in answers[1].text and "models:tiny" in answers[2].text


def test_a_profile_of_no_devices_is_a_body_out_of_range(client):
    """num_devices 0 had reached the library and come back as 400; a number out of range is 422, as advise's is."""
    for body in ({"num_devices": 0}, {"batch": 0}, {"context": 0}, {"tensor_parallel": 0}):
        assert one_error(client.post("/v1/profile", json={"model": "llama-3.1-8b", "hardware": "l4", **body}), 422)


def test_a_job_that_ends_while_it_is_cancelled_is_refused_as_ended(client, monkeypatch):
    """The job's state and the store's cancel are read apart: a job that finished in between had come back 202 with a
    finished state."""
    from optiplan.planner.service.store import new_job

    store = client.app.state.store
    job = store.insert(new_job("apply", {"kind": "apply", "model": "tiny", "output": "racy"}, "racy", 1))
    store.claim(job.id, "w1")
    real = store.cancel

    def ends_first(job_id):
        store.finish(job_id, 1, "succeeded", result={})
        return real(job_id)

    monkeypatch.setattr(store, "cancel", ends_first)
    assert "has ended (succeeded)" in one_error(client.delete(f"/v1/jobs/{job.id}"), 409)


def test_the_job_list_takes_an_offset(client):
    from optiplan.planner.service.store import new_job

    store = client.app.state.store
    ids = [store.insert(new_job("apply", {"kind": "apply", "model": "tiny", "output": f"o{i}"}, f"o{i}", 1)).id
           for i in range(3)]
    newest_first = [j["id"] for j in client.get("/v1/jobs").json()]
    assert set(ids) <= set(newest_first)
    assert [j["id"] for j in client.get("/v1/jobs", params={"limit": 1, "offset": 1}).json()] == newest_first[1:2]


def test_the_job_list_carries_each_jobs_last_log_lines_when_asked(client):
    """The page polls the list for the jobs it streams no events of: without their logs it showed their last line as
    it stood when polling began. `log=N` adds each job's last N lines (at most LIST_LOG_LINES); none by default."""
    from optiplan.planner.service.app import LIST_LOG_LINES
    from optiplan.planner.service.store import new_job

    store = client.app.state.store
    job = store.insert(new_job("apply", {"kind": "apply", "model": "tiny", "output": "logged"}, "logged", 1))
    store.claim(job.id, "w1")
    store.update(job.id, lambda j: {"log": j.log + [f"line {i}" for i in range(30)]})

    def listed(**params):
        return next(j for j in client.get("/v1/jobs", params=params).json() if j["id"] == job.id)
    assert "log" not in listed() and "result" not in listed(log=1)
    assert listed(log=1)["log"] == ["line 29"]
    assert listed(log=500)["log"] == [f"line {i}" for i in range(30 - LIST_LOG_LINES, 30)]
    assert "log" not in listed(log=-3)
    page = client.get("/").text
    assert 'fetch("/v1/jobs?limit=30&log=1")' in page
