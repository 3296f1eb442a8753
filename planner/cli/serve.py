"""`optiplan serve` (the HTTP service) and `optiplan worker` (a Redis queue worker): thin commands over
planner/service. fastapi, uvicorn, rq and redis (the `serve` extra) are imported only when they run."""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly

FOLDER = click.Path(file_okay=False, path_type=Path)
SHUTDOWN_GRACE_S = 5  # what open connections (a job's event stream) get once the server is asked to stop


def _need(package: str) -> None:
    import importlib.util

    from ..errors import OptiplanError

    if importlib.util.find_spec(package) is None:
        raise OptiplanError(f"this command needs {package}: pip install 'optiplan[serve]'")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback needs --token.")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--workdir", type=FOLDER, default=Path("optiplan-work"), show_default=True,
              help="Job outputs and the job database (jobs.sqlite) go here, and only here.")
@click.option("--models-dir", "models_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of model folders that requests may name (repeatable); nothing outside is read.")
@click.option("--token", envvar="OPTIPLAN_TOKEN", default=None,
              help="Bearer token required on every route but /healthz [env: OPTIPLAN_TOKEN].")
@click.option("--queue", default="local", show_default=True,
              help="'local' (SQLite in the workdir and an in-process pool) or redis://host:port/db for workers.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs run at once by the local queue.")
@click.option("--max-attempts", type=click.IntRange(1, 10), default=None,
              help="With --queue redis://: attempts per job when a worker dies mid-job [default: 2]. The local "
              "queue fails such a job.")
@click.option("--allow-pickle", is_flag=True, help="Let jobs load pickle (*.bin) weights when they ask to.")
@click.option("--keep-jobs-days", type=click.FloatRange(0, 36500), default=30.0, show_default=True,
              help="Forget ended jobs (their records, logs and results; never their outputs) this many days after "
              "they ended; 0 keeps them for ever.")
@click.option("--max-body-bytes", type=click.IntRange(1024, 1 << 30), default=1 << 20, show_default=True,
              help="Largest request body accepted.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
@friendly
def serve(host: str, port: int, workdir: Path, models_dirs: tuple[Path, ...], token: str | None, queue: str,
          workers: int, max_attempts: int | None, allow_pickle: bool, keep_jobs_days: float, max_body_bytes: int,
          log_level: str) -> None:
    """Serve the advisor over HTTP: the CLI's requests and JSON, jobs for apply/verify/calibrate/bench, a web page.

    \b
      optiplan serve                                     # http://127.0.0.1:8080, jobs in ./optiplan-work
      optiplan serve --models-dir ./models --workdir ./work
      OPTIPLAN_TOKEN=... optiplan serve --host 0.0.0.0 --queue redis://localhost:6379/0
    """
    _need("fastapi")
    _need("uvicorn")
    from ..errors import OptiplanError
    from ..service.paths import Roots
    from ..service.security import Settings, check_bind

    check_bind(host, token)
    if queue != "local" and not queue.startswith(("redis://", "rediss://", "unix://")):
        raise OptiplanError(f"--queue '{queue}' is neither 'local' nor a redis:// URL")
    if queue != "local":
        _need("rq")
    elif max_attempts is not None:
        raise OptiplanError("--max-attempts is for Redis workers (another worker retries a job whose worker died); "
                            "the local queue fails a job its server was running when it stopped")
    import uvicorn

    from ..service.app import create_app

    settings = Settings(roots=Roots.create(workdir, models_dirs), token=token, queue=queue, workers=workers,
                        allow_pickle=allow_pickle, max_body_bytes=max_body_bytes, keep_jobs_days=keep_jobs_days,
                        max_attempts=max_attempts or (1 if queue == "local" else 2))
    app = create_app(settings)  # refuses a workdir another server holds, before anything is printed
    click.echo(f"optiplan serve: http://{host}:{port}/ (workdir {settings.roots.workdir}, queue "
               f"{'local' if queue == 'local' else 'redis'}{', token required' if token else ''})", err=True)
    # an open event stream ends only with its job: without a bound, stopping the server waited for every running job
    # (its shutdown, which fails them at once, never came); five seconds, then the streams are dropped
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                server_header=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


@click.command()
@click.option("--queue", required=True, help="The Redis the servers enqueue to, redis://:password@host:port/db "
              "(rediss:// across machines).")
@click.option("--workdir", type=FOLDER, default=Path("optiplan-work"), show_default=True,
              help="Where job outputs are written on this machine (the same names as the server's).")
@click.option("--models-dir", "models_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model folders jobs may name (repeatable).")
@click.option("--name", default=None, help="This worker's name [default: host-pid].")
@click.option("--allow-pickle", is_flag=True, help="Let jobs load pickle (*.bin) weights when they ask to.")
@click.option("--stale-after", "stale_after_s", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Seconds without a heartbeat after which another worker's job is retried or failed.")
@click.option("--keep-jobs-days", type=click.FloatRange(0, 36500), default=30.0, show_default=True,
              help="Forget ended jobs (their records, logs and results; never their outputs) this many days after "
              "they ended; 0 keeps them for ever.")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@friendly
def worker(queue: str, workdir: Path, models_dirs: tuple[Path, ...], name: str | None, allow_pickle: bool,
           stale_after_s: float, keep_jobs_days: float, burst: bool) -> None:
    """Run jobs from a Redis queue on this machine (one at a time; start several for more).

    \b
      optiplan worker --queue redis://queue-host:6379/0 --models-dir /models --workdir /data/optiplan
    """
    _need("rq")
    from ..service.paths import Roots
    from ..service.redis_queue import safe_url, work

    work(queue, Roots.create(workdir, models_dirs), name=name, allow_pickle=allow_pickle,
         stale_after_s=stale_after_s, burst=burst, keep_jobs_days=keep_jobs_days,
         on_ready=lambda worker_name: click.echo(f"optiplan worker {worker_name}: taking jobs from "
                                                 f"{safe_url(queue)}", err=True))
