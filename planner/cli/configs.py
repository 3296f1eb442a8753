"""`optiplan configs`: deployment configs rendered from a plan (planner/deploy), a thin command over advise."""

from __future__ import annotations

from pathlib import Path

import click

from .common import DEFAULT_HARDWARE, DEFAULT_MODEL, PlanEngineName, friendly, plan_overrides


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--hardware", "-H", default=DEFAULT_HARDWARE, show_default=True,
              help="Catalog device id or alias, 'local', or 'auto'.")
@click.option("--gpus", "--devices", "num_devices", type=click.IntRange(min=1), default=None,
              help="Devices [default: 1].")
@click.option("--workload", "-w", default="chat", show_default=True, help="Preset or a YAML/JSON workload file.")
@click.option("--engine", "-e", "target", default=None,
              help="vllm, sglang, tgi, trtllm, llama.cpp, compose, kubernetes, or all [default: the engine advise "
                   "plans for: vllm, or where it does not run, one that does (llama.cpp on a Mac)].")
@click.option("--serving-engine", type=PlanEngineName(["vllm", "sglang", "tgi", "trtllm", "llama.cpp"]),
              default=None,
              help="The engine compose and kubernetes run [default: as --engine's].")
@click.option("--goal", type=click.Choice(["memory", "latency", "throughput", "context", "cost"]), default=None,
              help="Override the workload's goal (as advise's --goal).")
@plan_overrides
@click.option("--output", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the configs to.")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty output folder.")
@friendly
def configs(model: str, hardware: str, num_devices: int | None, workload: str, target: str | None,
            serving_engine: str | None, goal: str | None, quality: str | None, concurrency: int | None,
            max_context: int | None, without: tuple[str, ...], out_dir: Path, force: bool) -> None:
    """Render deployment configs for MODEL from its plan: engine command lines and config files,
    docker compose, Kubernetes manifests, and a README saying how to start them; for a training
    workload (fine-tune), its training script, settings and accelerate launch config.

    \b
      optiplan configs llama-3.1-70b --hardware h100-sxm --gpus 4 --workload chat --engine vllm -o deploy/
      optiplan configs ./my-model --hardware l4 --engine kubernetes -o k8s/
      optiplan configs phi-3.5-moe --hardware a100-80gb-sxm --gpus 2 --goal throughput -o deploy/
      optiplan configs llama-3.1-8b --hardware h100-sxm --gpus 8 --workload fine-tune -o finetune/
    """
    from ..catalog.workloads import parse_percent
    from ..deploy.bundle import configs as configs_bundle
    from ..deploy.render import write
    from ..plan.advise import advise as run_advise
    from ..schema.advice import AdviseRequest

    quality_pct = parse_percent(quality)

    def advise_for(engine: str | None, device: str, devices: int | None):
        return run_advise(AdviseRequest(model=model, hardware=device, num_devices=devices, workload=workload,
                                        goal=goal, engine=engine, max_quality_loss_pct=quality_pct,
                                        concurrency=concurrency, max_context=max_context, without=without))

    result = configs_bundle(target, serving_engine, hardware, num_devices, advise_for)
    for path in write(result.files, out_dir, force=force):
        click.echo(str(path))
    for line in result.messages():
        click.echo(line, err=True)
