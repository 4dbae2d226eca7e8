"""Which way up: a small network that tells whether a model input shows its garment upright or
turned a quarter, half or three quarters round, so that `predict` can turn it back.

Every Fashion-MNIST image and nearly every phone photo of clothing-dataset-small shows its
garment upright, so the classifiers learnt only that: trousers photographed lying across a bed
come out as "Bag" or "T-shirt/top", confidently. This network learns the turn itself, a
self-supervised task (Gidaris et al. 2018, "Unsupervised representation learning by predicting
image rotations"): each training image is shown turned by 0, 90, 180 or 270 degrees and the
network names the turn. `predict` turns a picture back only where this network is sure
(`Upright.threshold`, chosen on validation pictures) and the classifier is at least as sure of
the turned-back input as of the picture as it came (predict.Classifier.input_logits).

Turns are counter-clockwise, as `torch.rot90` turns: TURN k means "turned k quarters".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import FashionCNNError
from .files import save_torch
from .models import build_model, shipped_model_dir, unreadable

TURNS = ("upright", "a quarter turn counter-clockwise", "upside down",
         "a quarter turn clockwise")  # index k: turned k quarters by torch.rot90
UPRIGHT_FORMAT = 1
SHIPPED = "upright"  # weights/upright/model.pt


def turned(images: torch.Tensor, turns: torch.Tensor | int) -> torch.Tensor:
    """uint8 [N, 28, 28] images each turned `turns` quarters counter-clockwise (an int, or
    int64 [N], one per image)."""
    if isinstance(turns, int):
        return torch.rot90(images, turns % 4, (1, 2))
    out = images.clone()
    for k in (1, 2, 3):  # one batched turn per angle
        rows = turns % 4 == k
        if rows.any():
            out[rows] = torch.rot90(images[rows], k, (1, 2))
    return out


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class UprightConfig:
    """One orientation network's training run (scripts/ship_upright.py)."""

    width: int = 8  # BestCNN width: 1/16 of the default's products
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.1  # one-cycle peak (SGD, Nesterov momentum)
    weight_decay: float = 5e-4
    seed: int = 0


def build_upright(width: int) -> nn.Module:
    """The network: the default's architecture (models.BestCNN) at `width`, 4 outputs."""
    return build_model("best", width=width, outputs=len(TURNS))


def train_upright(images: torch.Tensor, config: UprightConfig,
                  progress: Callable[[int, float], None] | None = None) -> nn.Module:
    """Train on uint8 upright images [N, 28, 28]: each batch mirrored at random (half the
    images) and each image turned by a random k, the target. `progress(epoch, loss)` after
    each epoch."""
    torch.manual_seed(config.seed)
    net = build_upright(config.width)
    steps = config.epochs * (len(images) // config.batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                          weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps)
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(len(images))
        for i in range(len(images) // config.batch_size):
            x = images[order[i * config.batch_size:(i + 1) * config.batch_size]]
            x = torch.where(torch.rand(len(x), 1, 1) < 0.5, x.flip(-1), x)
            k = torch.randint(0, len(TURNS), (len(x),))
            loss = nn.functional.cross_entropy(net(turned(x, k)), k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        if progress:
            progress(epoch + 1, loss.item())
    return net.eval()


@torch.inference_mode()
def turn_probabilities(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 4]: how likely each picture is turned k quarters."""
    return torch.cat([net(images[i:i + 1024]).softmax(1)
                      for i in range(0, len(images), 1024)]) if len(images) else \
        torch.empty(0, len(TURNS))


def choose_threshold(net: nn.Module, upright: torch.Tensor, allowed: float) -> float:
    """The lowest probability of a turn at which (`Upright.turns`: >= it) at most `allowed`
    (a share) of the upright validation pictures `upright` [N, 28, 28] are called turned."""
    probs = turn_probabilities(net, upright)
    called = probs[:, 1:].max(1).values.sort(descending=True).values  # their surest turn
    keep = int(allowed * len(called))
    if keep >= len(called):
        return 0.0
    return float(torch.nextafter(called[keep], torch.tensor(2.0)))  # just above the next one


# ---------------------------------------------------------------------------------------------
# Shipping and loading


@dataclass
class Upright:
    """A trained orientation network and the probability above which a turn is believed;
    `session`, if set (`on_onnxruntime`), runs it."""

    net: nn.Module
    threshold: float
    meta: dict[str, Any]
    session: Any = None

    def turns(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] -> int64 [N]: how many quarters counter-clockwise each picture
        is turned where the network is sure of it (>= threshold), else 0."""
        images = torch.as_tensor(images)
        if self.session is not None:
            from .export import session_logits

            probs = session_logits(self.session, images).softmax(1)
        else:
            probs = turn_probabilities(self.net, images)
        sure, k = probs.max(1)
        return torch.where(sure >= self.threshold, k, 0)

    def on_onnxruntime(self) -> None:
        """Run the network as a checked float32 onnxruntime graph (export.onnx_session, cached
        like the classifier's) on one thread: beside a classifier on onnxruntime, torch's
        thread pool and a second multi-thread pool both cost more than one thread does for
        this small network (design.md, "Garments lying on their side"). A graph that fails
        its check leaves the network in torch: slower, never wrong."""
        from .export import onnx_session

        try:
            self.session = onnx_session(self.net, {"path": self.meta["path"],
                                                   "arch": self.net.arch,
                                                   "class_names": list(TURNS)}, threads=1,
                                        name="the orientation step's")
        except FashionCNNError:
            self.session = None


def save_upright(path: Path, net: nn.Module, threshold: float, config: UprightConfig,
                 metrics: dict[str, Any], data_checksums: dict[str, Any]) -> None:
    """A self-describing orientation checkpoint (atomically). `metrics` go in as JSON data
    (e.g. torch's version string becomes a str), so the file loads with weights_only."""
    metrics = json.loads(json.dumps(metrics, default=str))
    payload = {"format": UPRIGHT_FORMAT, "kind": "orientation", "arch": net.arch,
               "arch_kwargs": net.arch_kwargs, "turns": list(TURNS), "threshold": threshold,
               "config": asdict(config), "metrics": metrics, "data_checksums": data_checksums,
               "state_dict": net.state_dict()}
    save_torch(payload, path)


def load_upright(path: str | Path | None = None) -> Upright:
    """An orientation checkpoint (default: the shipped one)."""
    path = Path(path) if path else shipped_model_dir(SHIPPED) / "model.pt"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        net = build_model(payload["arch"], **payload["arch_kwargs"])
        net.load_state_dict(payload["state_dict"])
    except Exception as err:  # noqa: BLE001 - a damaged file can fail anywhere in the unpickler
        raise FashionCNNError(f"{path} is not a readable orientation checkpoint"
                              f"{unreadable(err)}; re-install fashion-cnn or rerun "
                              "scripts/ship_upright.py.") from None
    meta = {k: v for k, v in payload.items() if k != "state_dict"} | {"path": str(path)}
    return Upright(net.eval(), float(payload["threshold"]), meta)
