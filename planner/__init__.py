"""The brain: schemas, model and hardware specs, the analytic profiler, and (in later issues)
measurement, calibration, the bottleneck classifier, the technique catalog, plan search, reports,
deployment configs, the CI gate and the CLI."""
