"""The trainer's hyperparameters: defaults, TRAINYARD_PARAMS on top, checked."""

from __future__ import annotations

from typing import Any, Callable, Optional


class ParamError(ValueError):
    """A parameter the trainer cannot run with; it exits 2 with the message."""


def _number(kind: type, low: float, high: float) -> Callable[[str, Any], Any]:
    def check(key: str, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ParamError(f"{key} must be a number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{key} must be a number, not {value!r}")
        if kind is int:
            if float(value) != int(value):
                raise ParamError(f"{key} must be a whole number, not {value!r}")
            value = int(value)
        if not (low <= value <= high):
            raise ParamError(f"{key} must be between {low:g} and {high:g}, not {value!r}")
        return kind(value)

    return check


# key → (default, check, meaning); the README's table says the same.
SPEC: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "total_steps": (400, _number(int, 1, 10_000_000)),
    "learning_rate": (0.05, _number(float, 1e-6, 10)),
    "momentum": (0.9, _number(float, 0, 0.999)),
    "weight_decay": (5e-4, _number(float, 0, 1)),
    "batch_size": (64, _number(int, 1, 1437)),
    "channels": (16, _number(int, 1, 256)),
    "hidden": (64, _number(int, 1, 4096)),
    "seed": (0, _number(int, 0, 2**31 - 1)),
    "log_every": (10, _number(int, 1, 1_000_000)),
    "eval_every": (50, _number(int, 1, 1_000_000)),
    "checkpoint_every": (100, _number(int, 0, 10_000_000)),
    "step_delay_ms": (0, _number(float, 0, 60_000)),
    "threads": (1, _number(int, 1, 256)),
}

# What a checkpoint must agree on to be resumed from: everything that shapes the
# trajectory (the schedule spans total_steps; the batch order depends on batch_size).
TRAJECTORY = ("total_steps", "learning_rate", "momentum", "weight_decay", "batch_size", "channels", "hidden", "seed")


def parse(given: dict[str, Any], total_steps: Optional[int]) -> tuple[dict[str, Any], list[str]]:
    """The parameters in effect and warnings; TRAINYARD_TOTAL_STEPS wins over params.total_steps."""
    warnings = [f"unknown parameter {key!r} ignored" for key in given if key not in SPEC]
    result: dict[str, Any] = {}
    for key, (default, check) in SPEC.items():
        value = given.get(key)
        result[key] = default if value is None else check(key, value)
    if total_steps is not None:
        result["total_steps"] = SPEC["total_steps"][1]("TRAINYARD_TOTAL_STEPS", total_steps)
    return result, warnings
