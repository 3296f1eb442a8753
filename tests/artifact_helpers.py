"""Test helper: write a workspace as an optimized-model artifact and load it back."""

from __future__ import annotations


def roundtrip(ws, tmp_path, name="out"):
    """Write the workspace as an artifact and load it back."""
    from optiplan.optimizers.artifact import load, write_artifact
    from optiplan.planner.schema.optimize import ArtifactManifest

    manifest = ArtifactManifest(source=str(ws.source), created="", device="cpu", steps=[], runtime=ws.runtime,
                                libraries={}, sha256={})
    write_artifact(ws, tmp_path / name, manifest)
    return load(tmp_path / name, "cpu")
