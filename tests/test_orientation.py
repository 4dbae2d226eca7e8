"""orientation.py: turns are batched rot90s, the network trains on whole batches, its threshold
lets through the share asked, checkpoints load or fail clearly, and `predict` turns garments
lying on their side back (the shipped network, on the bundled sample photos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, SAMPLES, load_script, synthetic_article
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.orientation import (
    TURNS,
    UprightConfig,
    choose_threshold,
    load_upright,
    save_upright,
    train_upright,
    turn_probabilities,
    turned,
)
from fashion_cnn.predict import Classifier, was_turned_back


def test_turns_are_per_image_quarter_turns_counter_clockwise() -> None:
    images = torch.arange(3 * 4 * 4, dtype=torch.uint8).reshape(3, 4, 4)
    k = torch.tensor([0, 1, 3])
    out = turned(images, k)
    for i in range(3):
        assert torch.equal(out[i], torch.rot90(images[i], int(k[i])))
    assert out[1][0, 0] == images[1][0, 3]  # a quarter counter-clockwise: top right -> top left
    assert torch.equal(turned(turned(images, k), -k), images)  # -k turns back
    assert torch.equal(turned(images, 2), images.flip(1).flip(2))


def _bars(n: int) -> torch.Tensor:
    """uint8 [n, 28, 28]: upright "garments" a network can learn the way up of: a bright
    block at the top and a thin stem below it, at random places."""
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i, (x, y) in enumerate(torch.randint(2, 10, (n, 2), generator=g).tolist()):
        images[i, y:y + 6, x:x + 14] = 250
        images[i, y + 6:y + 16, x + 6:x + 8] = 160
    return images


def test_a_short_training_learns_which_way_up() -> None:
    images = _bars(512)
    losses = []
    net = train_upright(images, UprightConfig(width=4, epochs=4, batch_size=64),
                        lambda epoch, loss: losses.append(loss))
    assert len(losses) == 4
    probs = turn_probabilities(net, turned(images[:64], 1))
    assert probs.shape == (64, len(TURNS))
    assert (probs.argmax(1) == 1).float().mean() > 0.5  # chance is 0.25


def test_the_threshold_lets_through_the_share_asked() -> None:
    net = train_upright(_bars(256), UprightConfig(width=4, epochs=1, batch_size=64))
    noise = torch.randint(0, 256, (200, 28, 28), generator=torch.Generator().manual_seed(1),
                          dtype=torch.uint8)
    threshold = choose_threshold(net, noise, allowed=0.05)
    called = turn_probabilities(net, noise)[:, 1:].max(1).values >= threshold
    assert called.sum() == 10  # >= the threshold: exactly the share asked (no ties here)
    assert choose_threshold(net, noise, allowed=0.0) >= threshold


def test_checkpoint_round_trip_and_a_damaged_one(tmp_path: Path) -> None:
    config = UprightConfig(width=4, epochs=1, batch_size=64)
    net = train_upright(_bars(128), config)
    # provenance holds torch.__version__, a TorchVersion: it must load with weights_only
    save_upright(tmp_path / "model.pt", net, 0.8, config, {"torch": torch.__version__},
                 {"file": "sum"})
    loaded = load_upright(tmp_path / "model.pt")
    assert loaded.threshold == 0.8 and loaded.meta["config"]["width"] == 4
    images = _bars(8)
    torch.testing.assert_close(turn_probabilities(loaded.net, images),
                               turn_probabilities(net, images))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FashionCNNError, match="not a readable orientation checkpoint"):
        load_upright(tmp_path / "bad.pt")


@pytest.fixture(scope="module")
def samples() -> list[tuple[Image.Image, str]]:
    pictures = sorted(p for p in SAMPLES.glob("*.jpg"))
    assert len(pictures) >= 20
    return [(Image.open(p).convert("RGB"), p.name) for p in pictures]


def test_predict_turns_garments_lying_on_their_side_back(
        samples: list[tuple[Image.Image, str]]) -> None:
    """The shipped orientation network with the default: the sample photos as they are keep
    their answers, and turned a quarter either way most get them back."""
    with_step, without = Classifier(), Classifier(upright=False)
    images = [im for im, _ in samples]
    as_they_are = with_step.classify(images)
    assert [p.label for p in as_they_are] == [p.label for p in without.classify(images)]
    assert not any(was_turned_back(p.warnings) for p in as_they_are)
    for turn in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
        sideways = [im.transpose(turn) for im in images]
        helped = with_step.classify(sideways)
        plain = without.classify(sideways)
        same = [a.label == b.label for a, b in zip(helped, as_they_are, strict=True)]
        plain_same = [a.label == b.label for a, b in zip(plain, as_they_are, strict=True)]
        assert sum(same) >= 0.7 * len(same) > sum(plain_same)
        turned_back = [p for p in helped if was_turned_back(p.warnings)]
        assert len(turned_back) >= sum(same) - sum(plain_same)


def test_dataset_form_images_are_never_turned(samples: list[tuple[Image.Image, str]]) -> None:
    """28x28 dataset images are upright by the dataset's making: the orientation network is
    not even asked (their latency stays the model's), while photos are."""
    classifier = Classifier(backend="torch")
    asked: list[int] = []
    real_turns = classifier.upright.turns
    classifier.upright.turns = lambda images: asked.append(len(images)) or real_turns(images)
    trouser = np.rot90(synthetic_article(1)).copy()  # on its side, in dataset form
    prediction = classifier.classify([Image.fromarray(trouser)])[0]
    assert asked == [] and not was_turned_back(prediction.warnings)
    classifier.classify([samples[0][0]])
    assert asked == [1]


def test_beside_an_onnxruntime_classifier_the_network_runs_there_too(
        samples: list[tuple[Image.Image, str]]) -> None:
    """One runtime's threads, not two pools taking turns; the graph answers as the network."""
    pytest.importorskip("onnxruntime")
    classifier = Classifier(backend="onnxruntime")
    assert classifier.upright.session is not None
    inputs = [classifier.prepare(im.transpose(Image.Transpose.ROTATE_90), name).input.image
              for im, name in samples]
    images = torch.from_numpy(np.stack(inputs))
    on_onnx = classifier.upright.turns(images)
    classifier.upright.session = None
    assert torch.equal(on_onnx, classifier.upright.turns(images))
    assert (on_onnx == 1).sum() >= len(samples) // 2


def test_the_shipped_card_is_made_from_its_metrics() -> None:
    """weights/upright: MODEL_CARD.md is what ship_upright.card makes of metrics.json, the
    checkpoint carries the same threshold, and the figures meet what the step relies on."""
    ship = load_script(ROOT / "scripts" / "ship_upright.py")
    folder = ROOT / "src" / "fashion_cnn" / "weights" / "upright"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (folder / "MODEL_CARD.md").read_text() == ship.card(metrics)
    shipped = load_upright()
    assert shipped.threshold == metrics["threshold"]
    assert metrics["validation"]["Fashion-MNIST validation"]["turn_accuracy"] > 0.95
    assert metrics["validation"]["real photos, validation"]["upright_called_turned"] <= 0.02
