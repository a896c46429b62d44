"""The library behind the DVC stages in stages/: unlearning factual knowledge from causal LMs with adaptive RMU,
scored as the official SemEval-2025 Task 4 evaluation.

    config        params.yaml: every key declared once (type, range, default, meaning)
    files         JSON/JSONL reading with one-line errors; atomic writes
    data/         the SemEval row schema and its checks, the organizers' and jsonl loaders, the synthetic world
    models/       loading (safetensors), deltas, decoder layers by index, LM training
    methods/      one file per unlearning method, the name -> method tables, the shared training pieces
    evaluation/   generation, the official scorer, MIA attacks, MMLU, PII extraction
    report/       the summary (metrics.json), report.md and the plots
    tools/        compare (reads `dvc exp show`), export (a standalone model), sync (dvc.yaml, params.yaml, docs)

Nothing here reads params.yaml on its own: a stage reads the params it declares and passes values in.
"""
