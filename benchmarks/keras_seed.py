"""The reference: the classic Keras CNN for Fashion-MNIST, timed. Runs in its own venv with
tensorflow-cpu (see train_seed.py); needs nothing from fashion_cnn.

    python keras_seed.py DATA_DIR [--epochs 10] [--seed 0]   -> one JSON object on stdout
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def read_idx(path: str, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args()

    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(args.seed)
    d = args.data_dir
    x = read_idx(f"{d}/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    y = read_idx(f"{d}/train-labels-idx1-ubyte.gz", 8)
    x_test = read_idx(f"{d}/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    y_test = read_idx(f"{d}/t10k-labels-idx1-ubyte.gz", 8)
    x, x_test = x.astype("float32") / 255.0, x_test.astype("float32") / 255.0
    y1, y1_test = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(y_test, 10)
    order = np.random.default_rng(args.seed).permutation(len(x))
    n_val = int(round(args.val_fraction * len(x)))
    train, val = order[n_val:], order[:n_val]

    # The reference model, exactly (machinelearningmastery's Fashion-MNIST CNN).
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu", kernel_initializer="he_uniform"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)

    epoch_seconds: list[float] = []
    model.fit(x[train], y1[train], epochs=args.epochs, batch_size=32, verbose=0,
              callbacks=[Timer()])  # validation excluded from the timing, as in fashion-cnn
    start = time.perf_counter()
    _, test_accuracy = model.evaluate(x_test, y1_test, verbose=0)
    eval_seconds = time.perf_counter() - start
    _, val_accuracy = model.evaluate(x[val], y1[val], verbose=0)
    print(json.dumps({
        "framework": f"tensorflow {tf.__version__} / keras {keras.__version__}",
        "epochs": args.epochs, "batch_size": 32, "n_train": len(train),
        "epoch_seconds": epoch_seconds,
        "images_per_second": [len(train) / s for s in epoch_seconds],
        "train_seconds": sum(epoch_seconds),
        "val_accuracy": float(val_accuracy),
        "test_accuracy": float(test_accuracy),
        "test_eval_seconds": eval_seconds,
    }))


if __name__ == "__main__":
    main()
