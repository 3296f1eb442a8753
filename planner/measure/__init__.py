"""Measuring real models with torch and transformers (imported lazily): timing rounds, worker processes, microbenchmarks, the fit, calibrate, profile --measure."""
