"""The seed CNN's fast CPU path: its hand-fused training step and forward pass (fused.py), their
compiled numba kernels (kernels.py) and the automatic thread count (threads.py). Imported only
when the seed CNN trains or evaluates on it, so the other models never load numba."""
