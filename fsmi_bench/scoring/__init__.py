"""The scoring stage: a run's outputs -> the long results table (batched scorer, feature cache)."""
