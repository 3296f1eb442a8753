"""Safe by default: loopback unless there is a token, the token on every route but /healthz (header or the web
page's cookie), pickle weights and remote calls only when the server allows them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from optiplan.planner.cli.main import main
from optiplan.planner.service.security import check_bind, is_loopback

ADVISE = {"model": "llama-3.1-8b", "hardware": "l4"}


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("0.0.0.0", False), ("10.0.0.5", False),
                                            ("::", False), ("example.org", False)])
def test_only_loopback_counts_as_local(host, loopback):
    assert is_loopback(host) is loopback


def test_listening_beyond_this_machine_needs_a_long_token():
    from optiplan.planner.errors import OptiplanError

    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "x" * 32)
    with pytest.raises(OptiplanError, match="refusing to listen on 0.0.0.0 without a token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(OptiplanError, match="shorter than 16"):
        check_bind("0.0.0.0", "short")


def test_serve_refuses_a_public_address_without_a_token_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTIPLAN_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: refusing to listen on 0.0.0.0 without a token")
    assert "Traceback" not in result.output
    bad_queue = CliRunner().invoke(main, ["serve", "--queue", "amqp://x", "--workdir", str(tmp_path / "w")])
    assert bad_queue.exit_code == 2 and "neither 'local' nor a redis:// URL" in bad_queue.stderr


@pytest.mark.parametrize("host, allowed", [("127.0.0.1:8080", True), ("localhost:8080", True), ("localhost", True),
                                           ("[::1]:8080", True), ("evil.example:8080", False),
                                           ("127.0.0.1.evil.example", False), ("", False)])
def test_without_a_token_only_requests_addressed_to_localhost_are_answered(client, host, allowed):
    response = client.get("/v1/catalog/workloads", headers={"Host": host})
    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert response.json()["error"].startswith("this server has no token and answers only requests addressed")


def test_every_route_but_healthz_needs_the_token(make_client, token):
    client = make_client(token=token)
    assert client.get("/healthz").status_code == 200
    for method, path in [("GET", "/metrics"), ("GET", "/v1/catalog/models"), ("POST", "/v1/advise"),
                         ("GET", "/v1/jobs"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/report")]:
        response = client.request(method, path, json=ADVISE)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"].startswith("this server needs its token")
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/advise", json=ADVISE, headers={"Authorization": "Bearer " + "y" * len(token)})
    assert wrong.status_code == 401
    right = client.post("/v1/advise", json=ADVISE, headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200


def test_a_browser_signs_in_once_and_keeps_a_strict_cookie(make_client, token):
    client = make_client(token=token)
    page = client.get("/report?model=llama-3.1-8b&hardware=l4", headers={"Accept": "text/html"},
                      follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Freport%3Fmodel%3Dllama-3.1-8b%26hardware%3Dl4"
    assert "needs its token" in client.get(page.headers["location"]).text
    failed = client.post("/login", data={"token": "wrong", "next": "/"})
    assert failed.status_code == 401 and "not right" in failed.text
    offsite = client.post("/login", data={"token": token, "next": "//evil.example/"}, follow_redirects=False)
    assert offsite.headers["location"] == "/"
    signed = client.post("/login", data={"token": token, "next": "/report?model=llama-3.1-8b&hardware=l4"},
                         follow_redirects=False)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    report = client.get(signed.headers["location"])
    assert report.status_code == 200 and "<svg" in report.text
    # another app's malformed cookie on the same host (cookies are shared across localhost's ports) leaves the token
    # readable: it had dropped every cookie and sent the browser back to the login page
    for other in ("name=John Smith", "flag"):
        header = {"Cookie": f"{other}; optiplan_token={token}"}
        client.cookies.clear()
        assert client.get("/v1/jobs", headers=header).status_code == 200, other


def test_pickle_weights_only_when_the_server_allows_them(make_client):
    job = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "output": "out", "allow_pickle": True}
    refused = make_client().post("/v1/jobs", json=job)
    assert refused.status_code == 403 and "--allow-pickle" in refused.json()["error"]


def test_jobs_cannot_write_outside_the_workdir_or_over_its_database(client):
    base = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"]}
    for output, words in [("../escape", "'..' is refused"), ("/tmp/x", "absolute paths"),
                          ("jobs.sqlite", "reserved"), (".hidden", "names are letters")]:
        response = client.post("/v1/jobs", json=base | {"output": output})
        assert response.status_code in (400, 403) and words in response.json()["error"], output
    bench = {"kind": "bench", "models": ["tiny"], "endpoints": ["http://169.254.169.254"]}
    assert "does not call other servers" in client.post("/v1/jobs", json=bench).json()["error"]
    assert client.get("/v1/jobs").json() == []  # nothing was queued


@pytest.mark.parametrize("headers, status, words", [
    ({"Content-Type": "text/plain"}, 415, "Content-Type: application/json"),  # a form or fetch() without preflight
    ({}, 415, "Content-Type: application/json"),
    ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "another origin"),
    ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:9999"}, 403, "another origin"),
    ({"Content-Type": "application/json", "Origin": "null"}, 403, "another origin"),
    ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site: cross-site"),
])
def test_requests_that_change_something_are_refused_from_another_site(make_client, token, headers, status, words):
    import json

    client = make_client(token=token)
    client.cookies.set("optiplan_token", token)  # a signed-in browser: the cookie goes along with any request
    job = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "output": "out"}
    response = client.post("/v1/jobs", content=json.dumps(job), headers=headers)
    assert response.status_code == status and words in response.json()["error"]
    assert client.get("/v1/jobs").json() == []  # nothing was queued
    if "Origin" in headers or "Sec-Fetch-Site" in headers:
        assert client.delete("/v1/jobs/0123456789abcdef", headers=headers).status_code == 403
        assert client.post("/login", data={"token": token}, headers=headers).status_code == 403


def test_the_pages_own_requests_pass(make_client, token):
    client = make_client(token=token)
    client.cookies.set("optiplan_token", token)
    same = {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}
    response = client.post("/v1/advise", json=ADVISE, headers=same)
    assert response.status_code == 200, response.text
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/v1/advise", json=ADVISE, headers=charset).status_code == 200
    assert client.get("/v1/jobs", headers={"Origin": "http://evil.example"}).status_code == 200  # reading is not CSRF


def test_the_job_database_is_never_an_input_and_bench_jobs_are_bounded(client):
    assert (client.app.state.settings.roots.workdir / "jobs.sqlite").is_file()
    apply = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "output": "out",
             "eval_text": "jobs.sqlite"}
    response = client.post("/v1/jobs", json=apply)
    assert response.status_code == 403 and "the job database is the server's own" in response.json()["error"]
    for field, value in [("repeats", 1000), ("threads", 100_000), ("memory_repeats", 500), ("warmup", 1000)]:
        response = client.post("/v1/jobs", json={"kind": "bench", "models": ["tiny"], field: value})
        assert response.status_code == 422 and field in response.json()["error"], field
    assert client.get("/v1/jobs").json() == []


def test_pages_cannot_be_framed_elsewhere_nor_kept_by_shared_caches(client):
    for path in ("/", "/v1/catalog/workloads", "/healthz"):
        headers = client.get(path).headers
        assert headers["x-frame-options"] == "SAMEORIGIN", path
        assert headers["content-security-policy"] == "frame-ancestors 'self'"
        assert headers["cache-control"] == "private"


def test_a_malformed_content_length_is_a_bad_request(client):
    import asyncio

    app, sent = client.app, []

    async def call():
        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/advise", "headers": [
            (b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"), (b"content-length", b"12abc")],
            "query_string": b"", "scheme": "http", "http_version": "1.1", "root_path": ""}
        await app(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 400 and b"Content-Length header is not a number" in sent[1]["body"]


def test_a_job_never_writes_into_a_models_dir_inside_the_workdir(tmp_path):
    """--workdir /data --models-dir /data/models: an output named models/tiny had resolved into the models dir (its
    shadow check looked for models/models/tiny) and a forced job replaced a served model."""
    from optiplan.planner.service.paths import Roots, ServiceRefused

    (tmp_path / "models" / "tiny").mkdir(parents=True)
    roots = Roots.create(tmp_path, [tmp_path / "models"])
    with pytest.raises(ServiceRefused, match="read-only inputs") as refused:
        roots.output_path("models/tiny")
    assert refused.value.status == 403
    assert roots.output_path("out/tiny") == tmp_path / "out" / "tiny"
    # the other way round (a workdir inside a models dir: `optiplan serve --models-dir .`), outputs are the workdir's
    inner = Roots.create(tmp_path / "models" / "work", [tmp_path / "models"])
    assert inner.output_path("out") == tmp_path / "models" / "work" / "out"
