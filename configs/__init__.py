"""Experiment configs (ml_collections). Each file's ``get_config(arg)`` takes
``test`` for its quick-test variant and ``key=value`` pairs (comma-separated),
e.g. ``--config configs/gpt_shakespeare.py:test,optim=muon``."""
