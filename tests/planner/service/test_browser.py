"""The web page in a real browser (Debian's chromium, driven by Playwright): sign in with the token, the form
submits, the report renders with its charts at a shareable URL, two devices side by side, and a job's progress
updates live until it is cancelled. Screenshots are kept as test artifacts (their paths are printed)."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("torch")  # the job started from the page runs apply
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# without the background-networking flags chromium tries to reach Google's services and, on a closed network,
# its connections (to the test's server too) get refused
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; CI installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def test_the_page_advises_compares_and_follows_a_job(browser, server_factory, token, tmp_path, record_property):
    server = server_factory(token=token).start()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    shots = []

    def shot(name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(str(path))

    page.goto(server.url + "/")
    assert "/login" in page.url  # the token first
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#advice-form")

    page.select_option("#model", "llama-3.1-8b")
    page.select_option("#hardware", "l4")
    page.select_option("#workload", "chat")
    page.click("#advise")
    page.wait_for_url("**/report?**")
    assert "model=llama-3.1-8b" in page.url and "hardware=l4" in page.url
    assert "llama-3.1-8b on 1" in page.inner_text("h1")
    assert page.locator("figure svg").count() >= 4  # memory, roofline, steps and graph charts
    shot("report")
    shared = page.url
    other = browser.new_page()  # someone else opens the shared URL: signs in, and lands on the same report
    other.goto(shared)
    other.fill("input[name=token]", token)
    other.click("button[type=submit]")
    other.wait_for_url(shared)
    assert other.inner_text("h1") == page.inner_text("h1")
    other.close()

    page.goto(server.url + "/")
    page.select_option("#model", "llama-3.1-8b")
    page.select_option("#hardware", "l4")
    page.select_option("#compare", "h100-sxm")
    page.click("#advise")
    page.wait_for_url("**/report?**compare=h100-sxm**")
    left, right = page.frame_locator("#left"), page.frame_locator("#right")
    assert "L4" in left.locator("h1").inner_text()
    assert "H100" in right.locator("h1").inner_text()
    assert right.locator("figure svg").count() >= 4
    shot("compare")

    page.goto(server.url + "/")
    page.select_option("#job-model", "tiny")
    page.fill("#job-output", "tiny-int8")
    page.uncheck("#job-verify")
    page.click("#job-submit")
    page.wait_for_selector("#job-message:has-text('queued')")
    row = page.locator("#jobs tbody tr").first
    row.locator(".state:has-text('running')").wait_for()
    row.locator(".step:has-text('loading libraries')").wait_for()  # progress pushed by server-sent events
    assert float(row.locator("progress").evaluate("bar => bar.value")) > 0
    shot("job-running")
    row.locator("button.cancel").click()
    row.locator(".state:has-text('cancelled')").wait_for()
    assert row.locator("button.cancel").is_hidden()
    shot("job-cancelled")
    with server.http() as http:
        (job,) = http.get("/v1/jobs").json()
    assert job["state"] == "cancelled" and job["output"] == "tiny-int8"
    record_property("screenshots", shots)
    print("browser screenshots:", *shots, sep="\n  ")
