"""The commands around the pipeline: the tiny config, the dropout sweep, the review comment."""
