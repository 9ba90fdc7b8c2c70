"""Analysis stage: plots and reports read from datasets, runs and prediction folders."""
