"""Commands beside the pipeline: compare (experiments), export (a standalone model), sync (dvc.yaml, params.yaml
and docs/params.md from the code)."""
