"""The PyTorch digits trainer as Trainyard runs it: child processes given only the protocol's
variables. Needs PyTorch and scikit-learn (`python3 -m unittest discover -s trainers/pytorch-digits -v`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import torch

from train import weights_only

TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
FAST = {"total_steps": 60, "log_every": 1, "eval_every": 20, "checkpoint_every": 0}


class Run:
    def __init__(self, root: str, name: str, params: dict[str, object], previous: str | None = None) -> None:
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8"}
        env.update(TRAINYARD_RUN_DIR=self.dir, TRAINYARD_METRICS_FILE=os.path.join(self.dir, "metrics.jsonl"), TRAINYARD_PARAMS=json.dumps(params))
        if previous:
            env["TRAINYARD_PREVIOUS_RUN_DIR"] = previous
        self.proc = subprocess.Popen([sys.executable, TRAIN], cwd=self.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=300)
        return self.proc.returncode, out, err

    def lines(self) -> list[dict[str, float]]:
        with open(os.path.join(self.dir, "metrics.jsonl"), encoding="utf-8") as file:
            return [json.loads(line) for line in file.read().splitlines()]

    def checkpoint(self) -> dict[str, object]:
        return torch.load(os.path.join(self.dir, "checkpoint.pt"), weights_only=weights_only(torch))


class DigitsTrainer(unittest.TestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="trainyard-digits-")

    def tearDown(self) -> None:
        subprocess.run(["rm", "-rf", self.root], check=False)

    def test_bad_parameters_exit_2_with_the_reason(self) -> None:
        code, _, err = Run(self.root, "bad", {"learning_rate": -1}).wait()
        self.assertEqual(code, 2)
        self.assertIn("invalid parameters: learning_rate must be between", err)

    def test_a_stopped_then_resumed_run_ends_exactly_where_an_uninterrupted_one_does(self) -> None:
        whole = Run(self.root, "whole", FAST)
        first = Run(self.root, "first", FAST)
        # Stop it mid-way, once it has trained some steps.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(first.dir, "metrics.jsonl")) and len(first.lines()) > 15:
                break
            time.sleep(0.02)
        first.proc.send_signal(signal.SIGTERM)
        code, out, err = first.wait()
        self.assertEqual(code, 143, err)
        stopped_at = first.lines()[-1]["step"]
        self.assertIn(f"stopped by SIGTERM at step {stopped_at}/60", out)
        self.assertLess(stopped_at, 60)

        second = Run(self.root, "second", FAST, previous=first.dir)
        code, out, err = second.wait()
        self.assertEqual(code, 0, err)
        self.assertIn(f"resumed from {first.dir}/checkpoint.pt at step {stopped_at}", out)
        self.assertEqual(whole.wait()[0], 0)

        # Every step once across the two runs, and each one as the uninterrupted run had it.
        steps = [line["step"] for line in first.lines() + second.lines() if "loss" in line]
        self.assertEqual(steps, list(range(1, 61)))
        by_step = {line["step"]: line for line in whole.lines()}
        for line in second.lines():
            self.assertEqual(line, by_step[line["step"]])
        ends = whole.checkpoint(), second.checkpoint()
        for name, tensor in ends[0]["model"].items():  # type: ignore[union-attr]
            self.assertTrue(torch.equal(tensor, ends[1]["model"][name]), name)  # type: ignore[index]
        self.assertEqual(ends[0]["scheduler"], ends[1]["scheduler"])

    def test_a_checkpoint_made_for_another_model_is_not_resumed(self) -> None:
        previous = os.path.join(self.root, "previous")
        os.makedirs(previous)
        config = {"total_steps": 5, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64, "channels": 16, "hidden": 64, "seed": 0}
        torch.save({"step": 3, "config": config}, os.path.join(previous, "checkpoint.pt"))
        run = Run(self.root, "run", {**FAST, "total_steps": 5, "channels": 8}, previous=previous)
        code, _, err = run.wait()
        self.assertEqual(code, 0, err)
        self.assertIn("was made for a different model or schedule (channels was 16, now 8); starting from scratch", err)
        self.assertEqual([line["step"] for line in run.lines() if "loss" in line], [1, 2, 3, 4, 5])

if __name__ == "__main__":
    unittest.main()
