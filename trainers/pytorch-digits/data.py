"""scikit-learn's handwritten digits (1 797 images of 8×8 pixels, shipped inside the
package: no download), a fixed train/test split, and a batch order that is a pure
function of (seed, step) — so a resumed run sees exactly the batches a run that never
stopped would have seen, with nothing but the step to checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the same test set for every run, so accuracies compare across seeds


@dataclass
class Split:
    x: torch.Tensor  # (n, 1, 8, 8) float32, standardised
    y: torch.Tensor  # (n,) int64 labels 0–9

    @property
    def size(self) -> int:
        return int(self.y.shape[0])


def load() -> tuple[Split, Split]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        list(range(len(labels))), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=digits.target
    )
    train_x, test_x = images[train_idx], images[test_idx]
    # Standardise with the training set's statistics only.
    mean, std = train_x.mean(), train_x.std()
    return Split((train_x - mean) / std, labels[train_idx]), Split((test_x - mean) / std, labels[test_idx])


class BatchOrder:
    """Each epoch visits the training set in a fresh order drawn from (seed, epoch); the
    last incomplete batch of an epoch is dropped so every step has a full batch."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if batch_size > size:
            raise ValueError(f"batch_size {batch_size} is larger than the training set ({size})")
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = size // batch_size
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.int64)

    def epoch_of(self, step: int) -> int:
        """Completed passes over the training set after `step` steps."""
        return step // self.per_epoch

    def batch(self, step: int) -> torch.Tensor:
        """Indices of the batch of the step that follows `step` completed steps."""
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(self.size, generator=generator)
            self._epoch = epoch
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]
