"""One training step of the best architecture in two processes (torchrun) against the same
step in one process on the whole batch: gradients must agree (tests/test_distributed.py)."""

import copy
import sys

import torch
import torch.nn.functional as F

from fashion_cnn.models import build_model
from fashion_cnn.training.distributed import (
    all_reduce_sum,
    finish,
    init_from_env,
    shard,
    sync_batch_norm,
    world,
)

init_from_env()
torch.manual_seed(0)
model = build_model("best", width=4)
whole = copy.deepcopy(model)  # plain batch norm, the whole batch, this process only
sync_batch_norm(model)
x = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
y = torch.randint(0, 10, (32,))
mine = shard(32)
(F.cross_entropy(model(x[mine]), y[mine], reduction="sum") / 32).backward()
all_reduce_sum(p.grad for p in model.parameters())
F.cross_entropy(whole(x), y).backward()
worst = max(((p.grad - q.grad).norm() / q.grad.norm()).item()
            for p, q in zip(model.parameters(), whole.parameters(), strict=True))
if world()[0] == 0:
    print(f"largest relative gradient difference {worst:.2e}")
processes = world()[1]
finish()
sys.exit(0 if processes == 2 and worst < 1e-4 else 1)
