"""Tests of trainyard.py with the standard library only: `python3 -m unittest discover -s trainers/python -v`.

Signals, a full disk and a file-size limit are exercised in child interpreters, so this
process keeps its own handlers and limits.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import trainyard  # noqa: E402

PROTOCOL = ("TRAINYARD_RUN_DIR", "TRAINYARD_METRICS_FILE", "TRAINYARD_PARAMS", "TRAINYARD_TOTAL_STEPS", "TRAINYARD_PREVIOUS_RUN_DIR")


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROTOCOL}
    env.update(values)
    return env


def child(code: str, env: dict[str, str], cwd: str) -> subprocess.Popen[str]:
    """A child interpreter running `code` with trainyard importable."""
    return subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {HERE!r}); import trainyard\n{code}"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Case(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="trainyard-py-")
        patcher = mock.patch.dict(os.environ, clean_env(), clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)

    def tearDown(self) -> None:
        subprocess.run(["rm", "-rf", self.dir], check=False)

    def lines(self, path: str) -> list[str]:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if text:
            self.assertTrue(text.endswith("\n"), "the file ends with a whole line")
        return text.splitlines()


class Environment(Case):
    def test_outside_trainyard_everything_is_in_the_current_directory(self) -> None:
        os.chdir(self.dir)
        self.assertEqual(trainyard.params(), {})
        self.assertIsNone(trainyard.total_steps())
        self.assertEqual(trainyard.total_steps(300), 300)
        self.assertEqual(trainyard.run_dir(), os.path.realpath(self.dir))
        self.assertEqual(trainyard.metrics_file(), os.path.join(os.path.realpath(self.dir), "metrics.jsonl"))
        self.assertIsNone(trainyard.previous_run_dir())
        self.assertIsNone(trainyard.resume_path("checkpoint.pt"))
        self.assertEqual(trainyard.checkpoint_path("checkpoint.pt"), os.path.join(os.path.realpath(self.dir), "checkpoint.pt"))

    def test_reads_the_protocol_variables(self) -> None:
        run = os.path.join(self.dir, "run-2")
        previous = os.path.join(self.dir, "run-1")
        os.environ.update(
            TRAINYARD_RUN_DIR=run,
            TRAINYARD_METRICS_FILE=os.path.join(run, "m.jsonl"),
            TRAINYARD_PARAMS='{"learning_rate": 0.1, "note": "ü"}',
            TRAINYARD_TOTAL_STEPS="400",
            TRAINYARD_PREVIOUS_RUN_DIR=previous,
        )
        self.assertEqual(trainyard.params(), {"learning_rate": 0.1, "note": "ü"})
        self.assertEqual(trainyard.total_steps(10), 400)
        self.assertEqual(trainyard.run_dir(), run)
        self.assertEqual(trainyard.metrics_file(), os.path.join(run, "m.jsonl"))
        self.assertEqual(trainyard.previous_run_dir(), previous)
        self.assertEqual(trainyard.checkpoint_path("c.pt"), os.path.join(run, "c.pt"))
        self.assertTrue(os.path.isdir(run), "checkpoint_path makes the run directory")

    def test_total_steps_falls_back_to_the_parameter_then_the_default(self) -> None:
        os.environ["TRAINYARD_PARAMS"] = '{"total_steps": 250}'
        self.assertEqual(trainyard.total_steps(10), 250)
        os.environ["TRAINYARD_TOTAL_STEPS"] = "90"
        self.assertEqual(trainyard.total_steps(10), 90)
        os.environ["TRAINYARD_PARAMS"] = '{"total_steps": null}'
        del os.environ["TRAINYARD_TOTAL_STEPS"]
        self.assertEqual(trainyard.total_steps(10), 10)

    def test_bad_values_say_what_is_wrong(self) -> None:
        os.environ["TRAINYARD_PARAMS"] = "{not json"
        with self.assertRaisesRegex(ValueError, "TRAINYARD_PARAMS is not JSON"):
            trainyard.params()
        os.environ["TRAINYARD_PARAMS"] = "[1, 2]"
        with self.assertRaisesRegex(ValueError, "must be a JSON object, not list"):
            trainyard.params()
        os.environ["TRAINYARD_PARAMS"] = "{}"
        os.environ["TRAINYARD_TOTAL_STEPS"] = "12.5"
        with self.assertRaisesRegex(ValueError, "TRAINYARD_TOTAL_STEPS must be a whole number"):
            trainyard.total_steps()
        os.environ["TRAINYARD_TOTAL_STEPS"] = "many"
        with self.assertRaisesRegex(ValueError, "TRAINYARD_TOTAL_STEPS must be a whole number"):
            trainyard.total_steps()


class Metrics(Case):
    def setUp(self) -> None:
        super().setUp()
        self.file = os.path.join(self.dir, "run", "metrics.jsonl")
        os.environ.update(TRAINYARD_RUN_DIR=os.path.join(self.dir, "run"), TRAINYARD_METRICS_FILE=self.file)

    def test_one_compact_line_per_call_with_total_steps_added(self) -> None:
        os.environ["TRAINYARD_TOTAL_STEPS"] = "5000"

        class Scalar:  # what a 0-d tensor or a NumPy scalar looks like to log()
            def item(self) -> float:
                return 0.41

        self.assertTrue(trainyard.log(120, epoch=2, lr=0.0009, loss=Scalar(), test_accuracy=0.87))
        self.assertTrue(trainyard.log(130, total_steps=6000, loss=0.4))
        self.assertEqual(
            self.lines(self.file),
            [
                '{"step":120,"total_steps":5000,"epoch":2,"lr":0.0009,"loss":0.41,"test_accuracy":0.87}',
                '{"step":130,"total_steps":6000,"loss":0.4}',
            ],
        )

    def test_nan_and_infinity_are_written_as_python_json_writes_them(self) -> None:
        trainyard.log(1, loss=math.nan, grad_norm=math.inf, score=-math.inf)
        self.assertEqual(self.lines(self.file), ['{"step":1,"loss":NaN,"grad_norm":Infinity,"score":-Infinity}'])
        self.assertTrue(math.isnan(json.loads(self.lines(self.file)[0])["loss"]))

    def test_a_value_that_is_not_a_number_is_refused(self) -> None:
        with self.assertRaisesRegex(TypeError, "metric 'loss' is not a number"):
            trainyard.log(1, loss=[1, 2])
        self.assertFalse(os.path.exists(self.file))

    def test_lines_from_many_threads_stay_whole(self) -> None:
        padding = "x" * 300  # longer lines make a torn write likelier, were there one

        def writer(thread: int) -> None:
            for i in range(400):
                trainyard.log(i, thread=thread, note=padding)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = [json.loads(line) for line in self.lines(self.file)]
        self.assertEqual(len(records), 8 * 400)
        for t in range(8):
            self.assertEqual([r["step"] for r in records if r["thread"] == t], list(range(400)))

    def test_another_process_sees_each_line_at_once(self) -> None:
        trainyard.log(7, loss=0.5)
        # No close, no flush: the line must already be in the file for Trainyard to read.
        with open(self.file, encoding="utf-8") as file:
            self.assertEqual(file.read(), '{"step":7,"loss":0.5}\n')

    def test_a_full_disk_warns_once_and_training_goes_on(self) -> None:
        proc = child(
            "ok = [trainyard.log(s, loss=0.1) for s in range(3)]\nprint(ok, 'alive')",
            clean_env(TRAINYARD_RUN_DIR=self.dir, TRAINYARD_METRICS_FILE="/dev/full"),
            self.dir,
        )
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out.strip(), "[False, False, False] alive")
        self.assertEqual(err.count("trainyard: cannot write metrics to /dev/full"), 1, err)
        self.assertIn("No space left on device", err)

    def test_a_line_cut_by_a_full_disk_is_taken_back(self) -> None:
        # A file-size limit stands in for a disk that fills up in the middle of a line.
        code = (
            "import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
            "print([trainyard.log(s, loss=0.123456789) for s in range(8)])\n"
        )
        proc = child(code, clean_env(TRAINYARD_RUN_DIR=self.dir), self.dir)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        results = json.loads(out.strip().replace("True", "true").replace("False", "false"))
        written = results.count(True)
        self.assertGreater(written, 0)
        self.assertEqual(results, [True] * written + [False] * (8 - written))
        lines = self.lines(os.path.join(self.dir, "metrics.jsonl"))
        self.assertEqual([json.loads(line)["step"] for line in lines], list(range(written)))
        self.assertEqual(err.count("cannot write metrics"), 1, err)


SIGNAL_LOOP = """
import time
step = 0
while not trainyard.should_stop():
    step += 1
    if step == 1:
        print("ready", flush=True)  # handlers are in from the first should_stop()
    time.sleep(0.01)
time.sleep({linger})
trainyard.save_atomic(trainyard.checkpoint_path("checkpoint.txt"), lambda f: f.write(str(step).encode()))
print("stopped by", trainyard.stop_signal().name, flush=True)
raise SystemExit(trainyard.stop_exit_code())
"""


class Stopping(Case):
    def run_until_signalled(self, signals: list[signal.Signals], linger: float = 0.0) -> tuple[int, str, str]:
        proc = child(SIGNAL_LOOP.format(linger=linger), clean_env(TRAINYARD_RUN_DIR=self.dir), self.dir)
        assert proc.stdout is not None
        self.assertEqual(proc.stdout.readline().strip(), "ready")
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err

    def test_sigterm_lets_the_loop_save_and_exit_143(self) -> None:
        code, out, err = self.run_until_signalled([signal.SIGTERM])
        self.assertEqual(code, 143, err)
        self.assertIn("stopped by SIGTERM", out)
        self.assertIn("SIGTERM received", err)
        with open(os.path.join(self.dir, "checkpoint.txt"), encoding="utf-8") as file:
            self.assertGreater(int(file.read()), 0)

    def test_sigint_exits_130(self) -> None:
        code, out, _ = self.run_until_signalled([signal.SIGINT])
        self.assertEqual(code, 130)
        self.assertIn("stopped by SIGINT", out)

    def test_a_second_signal_while_stopping_only_warns(self) -> None:
        code, out, err = self.run_until_signalled([signal.SIGTERM, signal.SIGINT, signal.SIGTERM], linger=1.0)
        self.assertEqual(code, 143, err)
        self.assertIn("stopped by SIGTERM", out)
        self.assertEqual(err.count("again while stopping"), 2, err)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "checkpoint.txt")))

    def test_nothing_to_stop_before_a_signal(self) -> None:
        self.assertFalse(trainyard.should_stop())
        self.assertIsNone(trainyard.stop_signal())


class Checkpoints(Case):
    def test_save_atomic_replaces_the_file_whole(self) -> None:
        path = os.path.join(self.dir, "checkpoint.bin")
        trainyard.save_atomic(path, lambda f: f.write(b"first"))
        self.assertEqual(trainyard.save_atomic(path, lambda f: f.write(b"second")), path)
        with open(path, "rb") as file:
            self.assertEqual(file.read(), b"second")
        self.assertEqual(os.listdir(self.dir), ["checkpoint.bin"])

    def test_a_failed_save_keeps_the_old_checkpoint_and_leaves_no_temporary(self) -> None:
        path = os.path.join(self.dir, "checkpoint.bin")
        trainyard.save_atomic(path, lambda f: f.write(b"good"))

        def half_then_fail(file: object) -> None:
            file.write(b"half")  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

        with self.assertRaisesRegex(OSError, "No space left"):
            trainyard.save_atomic(path, half_then_fail)
        with open(path, "rb") as file:
            self.assertEqual(file.read(), b"good")
        self.assertEqual(os.listdir(self.dir), ["checkpoint.bin"])

    def test_resume_path_is_the_previous_runs_checkpoint_when_it_exists(self) -> None:
        previous = os.path.join(self.dir, "run-1")
        os.makedirs(previous)
        os.environ["TRAINYARD_PREVIOUS_RUN_DIR"] = previous
        self.assertIsNone(trainyard.resume_path("checkpoint.pt"))
        trainyard.save_atomic(os.path.join(previous, "checkpoint.pt"), lambda f: f.write(b"x"))
        self.assertEqual(trainyard.resume_path("checkpoint.pt"), os.path.join(previous, "checkpoint.pt"))


if __name__ == "__main__":
    unittest.main()
