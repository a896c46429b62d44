"""Evaluation of one model: greedy generation, the official SemEval scorer, membership-inference attacks, MMLU and
PII extraction. Each of task.py, mia.py and mmlu.py reads its inputs (load_inputs), computes (run) and writes its
directory (write), so that a stage reads and checks every input before a model loads and computes every number
before it writes anything."""
