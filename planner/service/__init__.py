"""`optiplan serve`: the CLI's request models and library functions over HTTP, jobs for long work (an embedded
SQLite queue or Redis through RQ), a web page, safe by default. A thin layer beside `cli/`: same request models,
same functions; fastapi and uvicorn (the `serve` extra) are imported only here."""
