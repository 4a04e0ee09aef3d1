"""Train a small CNN with a Pool Skip block on scikit-learn's handwritten digits.

Everything runs on fastconv alone: layers, gradients and the SGD optimiser. The same
network is trained twice, with and without Pool Skip (``x + conv3x3(max_unpool(
max_pool(x)))`` after the first convolution), from the same seed; the loss and
accuracy curves of both are saved as a PNG.

    pip install "fastconv[examples]"
    python examples/train_digits.py [--epochs 20] [--output train_digits.png]
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import fastconv
from fastconv import nn


def build_network(pool_skip, rng):
    """1x8x8 digits -> 10 logits; Pool Skip (e = 2) sits after the first convolution."""
    layers = [nn.Conv2d(1, 32, 3, padding=1, rng=rng)]
    if pool_skip:
        layers.append(nn.PoolSkip(32, e=2, rng=rng))
    layers += [nn.ReLU(), nn.MaxPool2d(2),                          # 32 x 4 x 4
               nn.Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(),
               nn.MaxPool2d(2),                                     # 64 x 2 x 2
               nn.Flatten(), nn.Linear(64 * 2 * 2, 10, rng=rng)]
    return nn.Sequential(*layers)


def load_data(seed):
    """Digits as float32 NCHW in [0, 1], split 80/20 with every class in proportion."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(images, digits.target, test_size=0.2, random_state=seed,
                            stratify=digits.target)


def accuracy(model, images, labels, batch_size=256):
    """Fraction of images whose largest logit is the label."""
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model.forward(images[start:start + batch_size])
        correct += int(np.sum(logits.argmax(axis=1) == labels[start:start + batch_size]))
    return correct / len(images)


def train(name, model, data, args):
    """Train with SGD + momentum, cosine-decayed; return the per-epoch loss and accuracies."""
    x_train, x_test, y_train, y_test = data
    criterion = nn.CrossEntropyLoss()
    optimiser = nn.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    history = {"loss": [], "train": [], "test": []}
    for epoch in range(1, args.epochs + 1):
        # Cosine decay of the learning rate: large steps first, fine ones at the end.
        optimiser.lr = args.lr * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / args.epochs))
        order = rng.permutation(len(x_train))
        batches = range(0, len(order), args.batch_size)
        losses = []
        with tqdm(batches, desc=f"{name} epoch {epoch:2d}/{args.epochs}", unit="batch",
                  leave=False) as progress:
            for start in progress:
                chosen = order[start:start + args.batch_size]
                loss = criterion.forward(model.forward(x_train[chosen]), y_train[chosen])
                optimiser.zero_grad()
                model.backward(criterion.backward())
                optimiser.step()
                losses.append(float(loss))
                progress.set_postfix(loss=f"{loss:.4f}")
        history["loss"].append(float(np.mean(losses)))
        history["train"].append(accuracy(model, x_train, y_train))
        history["test"].append(accuracy(model, x_test, y_test))
        print(f"{name} epoch {epoch:2d}: loss {history['loss'][-1]:.4f}, "
              f"train accuracy {history['train'][-1]:.2%}, "
              f"test accuracy {history['test'][-1]:.2%}", flush=True)
    return history


def plot(histories, path):
    """Save the loss and accuracy curves of every run side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for (name, history), color in zip(histories.items(), ("tab:blue", "tab:orange"),
                                      strict=True):
        epochs = range(1, len(history["loss"]) + 1)
        loss_axes.plot(epochs, history["loss"], color=color, label=name)
        accuracy_axes.plot(epochs, history["train"], "--", color=color, label=f"{name}, train")
        accuracy_axes.plot(epochs, history["test"], color=color, label=f"{name}, test")
    loss_axes.set(xlabel="epoch", ylabel="mean training loss", yscale="log",
                  title="Cross-entropy loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy on sklearn digits")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="train_digits.png", help="where to save the plot")
    parser.add_argument("--require-accuracy", type=float, default=None, metavar="FRACTION",
                        help="exit with status 1 if the Pool Skip network's final test "
                             "accuracy is below this (for CI)")
    args = parser.parse_args()

    data = load_data(args.seed)
    print(f"fastconv {fastconv.__version__}, {fastconv.get_num_threads()} threads; digits: "
          f"{len(data[0])} training and {len(data[1])} test images of 8 x 8")
    histories, seconds = {}, {}
    for name, pool_skip in (("with Pool Skip", True), ("without Pool Skip", False)):
        start = time.perf_counter()
        model = build_network(pool_skip, np.random.default_rng(args.seed))
        histories[name] = train(name, model, data, args)
        seconds[name] = time.perf_counter() - start
    plot(histories, args.output)
    print()
    for name, history in histories.items():
        print(f"{name:18}: test accuracy {history['test'][-1]:.2%} "
              f"(best {max(history['test']):.2%}), trained in {seconds[name]:.1f} s")
    print(f"total {sum(seconds.values()):.1f} s; curves saved to {args.output}")
    final = histories["with Pool Skip"]["test"][-1]
    if args.require_accuracy is not None and final < args.require_accuracy:
        raise SystemExit(f"test accuracy {final:.2%} is below the required "
                         f"{args.require_accuracy:.2%}")


if __name__ == "__main__":
    main()
