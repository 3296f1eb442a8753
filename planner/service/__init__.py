"""`optiplan serve`: the CLI's request models and library functions over HTTP, jobs for long work (an embedded
SQLite queue or Redis through RQ), a web page, safe by default. A thin layer beside `cli/`: same request models,
same functions; fastapi and uvicorn (the `serve` extra) are imported only here."""

# "1" in the service's own tests only (never set for users): an apply job runs `runner.scripted_apply`, whose steps
# are named test-write, test-fail, test-hang, and the server that takes the jobs accepts those names
TEST_JOBS_ENV = "OPTIPLAN_SERVICE_TEST_JOBS"
