"""From the runs' metrics to verdicts and the report: statistics, claims, aggregation, figures."""
