"""The data: the SemEval row schema and its checks, the sources (synthetic, the organizers' files, jsonl, the hub) and
the prepared directory every stage after `prepare` reads."""
