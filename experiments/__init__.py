"""The CNN lab as reproducible experiments; `experiments/run.py` is the command line."""
