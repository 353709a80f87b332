"""A small CNN learns scikit-learn's handwritten digits with PyTorch, speaking Trainyard's
trainer protocol through trainers/python/trainyard.py. See trainers/README.md.

    /usr/bin/python3 trainers/pytorch-digits/train.py

Needs PyTorch and scikit-learn (Debian: apt-get install python3-torch python3-sklearn).
Exit codes: 0 done, 2 bad parameters, 143 stopped by SIGTERM (130 by SIGINT) after
saving a checkpoint, 1 crash.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trainyard  # noqa: E402
from params import TRAJECTORY, ParamError, parse  # noqa: E402

NAME = "pytorch-digits"
CHECKPOINT = "checkpoint.pt"


def say(line: str) -> None:
    print(line, flush=True)


def warn(line: str) -> None:
    print(f"{NAME}: warning: {line}", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def main() -> int:
    # Handlers first: torch takes seconds to import, and a stop in that time must not kill
    # the trainer before it can say so.
    trainyard.should_stop()
    try:
        p, warnings = parse(trainyard.params(), trainyard.total_steps())
    except (ParamError, ValueError) as error:
        print(f"{NAME}: invalid parameters: {error}", file=sys.stderr)
        return 2
    for w in warnings:
        warn(w)

    import torch
    from torch import nn

    from data import BatchOrder, load
    from model import count_weights, evaluate, make_cnn

    torch.set_num_threads(p["threads"])
    torch.manual_seed(p["seed"])
    train, test = load()
    order = BatchOrder(train.size, p["batch_size"], p["seed"])
    model = make_cnn(p["channels"], p["hidden"])
    total = p["total_steps"]
    optimizer = torch.optim.SGD(
        model.parameters(), lr=p["learning_rate"], momentum=p["momentum"], weight_decay=p["weight_decay"], nesterov=True
    )
    # One cycle: the learning rate climbs for the first 30% of the steps, then anneals to ~0.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p["learning_rate"], total_steps=total, cycle_momentum=False)
    config = {key: p[key] for key in TRAJECTORY}

    say(
        f"{NAME}: handwritten digits ({train.size} train / {test.size} test images of 8×8), "
        f"CNN with {count_weights(model)} weights, SGD + OneCycle, {total} steps, {p['threads']} thread(s)"
    )
    say(f"params: {p}")

    step = resume(torch, model, optimizer, scheduler, config)

    def checkpoint_now() -> None:
        # A scheduler's state_dict may hold a bound method (OneCycleLR's anneal_func in
        # older PyTorch); it is rebuilt by the constructor, so keep only the data.
        schedule = {k: v for k, v in scheduler.state_dict().items() if not callable(v)}
        state = {"step": step, "config": config, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": schedule}
        trainyard.save_atomic(trainyard.checkpoint_path(CHECKPOINT), lambda f: torch.save(state, f))

    if trainyard.previous_run_dir() is None or step == 0:
        # Where a fresh run starts from. A resumed run's starting point is the closing line
        # of the run it continues, so every step is written once across the two.
        accuracy, test_loss = evaluate(model, test.x, test.y)
        trainyard.log(step, total_steps=total, epoch=order.epoch_of(step), test_accuracy=accuracy, test_loss=test_loss)
        say(f"step {step}/{total}  test_accuracy {accuracy:.3f}  test_loss {test_loss:.4f}")
    evaluated_at = step

    loss_sum, loss_count = 0.0, 0
    started, start_step = time.monotonic(), step
    lr = scheduler.get_last_lr()[0]

    def report(closing: bool) -> None:
        """The metrics line of this step: on the cadence, or everything pending when closing."""
        nonlocal loss_sum, loss_count, evaluated_at
        line: dict[str, Any] = {}
        if loss_count and (closing or step % p["log_every"] == 0):
            line.update(lr=lr, loss=loss_sum / loss_count)
            loss_sum, loss_count = 0.0, 0
        if evaluated_at != step and (closing or step % p["eval_every"] == 0):
            accuracy, test_loss = evaluate(model, test.x, test.y)
            line.update(test_accuracy=accuracy, test_loss=test_loss)
            evaluated_at = step
            rate = (step - start_step) / max(time.monotonic() - started, 1e-9)
            say(
                f"step {step}/{total}  epoch {order.epoch_of(step)}  lr {lr:.4g}  loss {line.get('loss', float('nan')):.4f}  "
                f"test_accuracy {accuracy:.3f}  ({rate:.1f} steps/s, eta {duration((total - step) / rate)})"
            )
        if line:
            trainyard.log(step, total_steps=total, epoch=order.epoch_of(step), **line)

    while step < total and not trainyard.should_stop():
        batch = order.batch(step)
        loss = nn.functional.cross_entropy(model(train.x[batch]), train.y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr = scheduler.get_last_lr()[0]  # the rate this step used
        scheduler.step()
        step += 1
        loss_sum += loss.item()
        loss_count += 1
        report(closing=step == total)
        if step == total or trainyard.should_stop():
            continue
        if p["checkpoint_every"] and step % p["checkpoint_every"] == 0:
            checkpoint_now()
        if p["step_delay_ms"]:
            time.sleep(p["step_delay_ms"] / 1000)

    # A stop, whenever it came (in a step, in the sleep, before the first step): the
    # pending loss and an evaluation at this step, so the next run can start after it.
    report(closing=True)
    checkpoint_now()
    signal = trainyard.stop_signal()
    if signal is not None and step < total:
        say(f"stopped by {signal.name} at step {step}/{total}; checkpoint saved to {trainyard.checkpoint_path(CHECKPOINT)}")
        return trainyard.stop_exit_code()
    say(f"done: {step}/{total} steps; checkpoint saved to {trainyard.checkpoint_path(CHECKPOINT)}")
    return 0


def weights_only(torch: Any) -> bool:
    """Load checkpoints without running pickled code where PyTorch can (2.0 on). The
    weights-only loader of PyTorch 1.x (Debian 12's) cannot read a plain float such as the
    optimizer's learning rate, so there the whole pickle is read: the file is this
    trainer's own, from the previous run's directory on the same machine."""
    return int(torch.__version__.split(".")[0]) >= 2


def resume(torch: Any, model: Any, optimizer: Any, scheduler: Any, config: dict[str, Any]) -> int:
    """Loads the stopped previous run's checkpoint when it fits; the step to continue from."""
    path: Optional[str] = trainyard.resume_path(CHECKPOINT)
    if path is None:
        if trainyard.previous_run_dir() is not None:
            warn(f"no {CHECKPOINT} in {trainyard.previous_run_dir()}; starting from scratch")
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only(torch))
    except Exception as error:  # a torn or foreign file: say so, train from scratch
        warn(f"cannot read {path} ({error}); starting from scratch")
        return 0
    if state.get("config") != config:
        differs = ", ".join(f"{k} was {state.get('config', {}).get(k)!r}, now {v!r}" for k, v in config.items() if state.get("config", {}).get(k) != v)
        warn(f"{path} was made for a different model or schedule ({differs}); starting from scratch")
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    say(f"resumed from {path} at step {state['step']}")
    return int(state["step"])


if __name__ == "__main__":
    sys.exit(main())
