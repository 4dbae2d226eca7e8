"""`python -m fashion_cnn ...`: the same as the `fashion-cnn` command."""

from fashion_cnn.cli import run

run()
