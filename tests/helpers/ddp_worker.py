"""Train on the tiny learnable dataset; run alone or under torchrun (tests/test_distributed.py).

    python tests/helpers/ddp_worker.py OUT MODEL [TEACHER]    (MODEL: seed, best, ensemble:
        two narrow best models, or distilled: best taught by the checkpoint TEACHER)
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import learnable_images  # noqa: E402
from fashion_cnn.data import FashionMNIST  # noqa: E402
from fashion_cnn.training import TrainConfig, run_training  # noqa: E402
from fashion_cnn.training.config import Augment  # noqa: E402
from fashion_cnn.training.distributed import finish, init_from_env  # noqa: E402

out, model = Path(sys.argv[1]), sys.argv[2]
g = torch.Generator().manual_seed(0)
train_labels, test_labels = torch.randint(0, 10, (256,), generator=g), torch.randint(0, 10, (64,))
data = FashionMNIST(learnable_images(train_labels, 1), train_labels,
                    learnable_images(test_labels, 2), test_labels)
init_from_env()
options = {"ensemble": dict(model="best", members=2, width=8),
           "distilled": dict(model="best", teacher=sys.argv[-1], distill=0.5)}
config = TrainConfig(**options.get(model, dict(model=model)), epochs=2, batch_size=32, lr=0.01,
                     val_fraction=0.25,
                     augment=Augment(flip=True, translate=1,
                                     erase=0.0 if model == "seed" else 0.5))
run_training(config, data, out, progress=False, log=lambda _: None)
finish()
