"""A small CNN for 8×8 digits: two 3×3 convolutions, one 2×2 max-pool, two linear layers."""

from __future__ import annotations

import torch
from torch import nn


def make_cnn(channels: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8×8 → 4×4
        nn.Flatten(),
        nn.Linear(2 * channels * 4 * 4, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on a whole split; the model is left in training mode."""
    model.eval()
    try:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    finally:
        model.train()
    return accuracy, loss


def count_weights(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
