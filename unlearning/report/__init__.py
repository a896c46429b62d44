"""The report: the summary (reports/metrics.json), the markdown (reports/report.md) and the plots."""
