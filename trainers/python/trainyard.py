"""Trainyard's trainer protocol for Python trainers, in one file with no dependencies.

Copy this file next to your script (or put trainers/python on PYTHONPATH) and:

    import trainyard
    for step in range(start, trainyard.total_steps(1000)):
        ...
        trainyard.log(step + 1, loss=loss.item(), lr=scheduler.get_last_lr()[0])
        if trainyard.should_stop():
            trainyard.save_atomic(trainyard.checkpoint_path("checkpoint.pt"), lambda f: torch.save(state, f))
            raise SystemExit(trainyard.stop_exit_code())

Every function also works outside Trainyard: a plain `python train.py` reads no
parameters, writes metrics.jsonl and checkpoints to the current directory and resumes
from nothing. The protocol itself is described in trainers/README.md.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import tempfile
import threading
from typing import IO, Any, Callable, Optional

__all__ = [
    "params",
    "total_steps",
    "run_dir",
    "metrics_file",
    "previous_run_dir",
    "log",
    "should_stop",
    "stop_signal",
    "stop_exit_code",
    "checkpoint_path",
    "resume_path",
    "save_atomic",
]

METRICS_FILE = "metrics.jsonl"
# Keys of a metrics line that are progress, not series (trainers/README.md).
PROGRESS_KEYS = ("step", "total_steps", "epoch")


def _warn(message: str) -> None:
    # os.write, not print: this also runs inside signal handlers, where a buffered
    # stream being written by the interrupted code would raise "reentrant call".
    try:
        os.write(2, f"trainyard: {message}\n".encode("utf-8", "replace"))
    except OSError:
        pass


# --- the environment of a run ---------------------------------------------------------


def params() -> dict[str, Any]:
    """The run's hyperparameters (TRAINYARD_PARAMS, a JSON object); {} when unset."""
    text = os.environ.get("TRAINYARD_PARAMS", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TRAINYARD_PARAMS is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"TRAINYARD_PARAMS must be a JSON object, not {type(value).__name__}")
    return value


def total_steps(default: Optional[int] = None) -> Optional[int]:
    """TRAINYARD_TOTAL_STEPS, else params()["total_steps"], else `default`."""
    text = os.environ.get("TRAINYARD_TOTAL_STEPS", "").strip()
    source = "TRAINYARD_TOTAL_STEPS"
    value: Any = text
    if not text:
        value, source = params().get("total_steps"), "params.total_steps"
        if value is None:
            return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a whole number, not {value!r}") from None
    if not number.is_integer() or number < 0:
        raise ValueError(f"{source} must be a whole number ≥ 0, not {value!r}")
    return int(number)


def run_dir() -> str:
    """The run's own directory (TRAINYARD_RUN_DIR); the current directory outside Trainyard."""
    return os.path.abspath(os.environ.get("TRAINYARD_RUN_DIR") or os.getcwd())


def metrics_file() -> str:
    """Where metrics lines go (TRAINYARD_METRICS_FILE); <run dir>/metrics.jsonl by default."""
    return os.path.join(run_dir(), os.environ.get("TRAINYARD_METRICS_FILE") or METRICS_FILE)


def previous_run_dir() -> Optional[str]:
    """The stopped previous run's directory to resume from (TRAINYARD_PREVIOUS_RUN_DIR), or None.

    Trainyard sets it only after a stop: a completed or failed run means starting fresh.
    """
    value = os.environ.get("TRAINYARD_PREVIOUS_RUN_DIR")
    return os.path.abspath(value) if value else None


# --- metrics ---------------------------------------------------------------------------

_log_lock = threading.Lock()
_log_fd: Optional[int] = None
_log_path: Optional[str] = None
_log_warned = False


def _number(key: str, value: Any) -> Any:
    # Tensors, NumPy scalars and the like become plain floats; the rest stays as given
    # (Trainyard keeps numeric keys as series and ignores the others).
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    try:
        plain = value.item() if hasattr(value, "item") else float(value)
    except Exception:
        raise TypeError(f"metric {key!r} is not a number: {value!r}") from None
    if not isinstance(plain, (int, float)) or isinstance(plain, bool):
        raise TypeError(f"metric {key!r} is not a number: {value!r}")
    return plain


def _line(step: int, metrics: dict[str, Any]) -> bytes:
    record: dict[str, Any] = {"step": int(step)}
    try:
        total = total_steps()
    except ValueError:
        total = None  # the trainer reports bad parameters itself; a metrics line still gets written
    if total is not None and "total_steps" not in metrics:
        record["total_steps"] = total
    for key, value in metrics.items():
        record[key] = _number(key, value)
    # allow_nan (the default) writes NaN and ±Infinity the way Trainyard keeps them:
    # a diverging loss must show, never turn into null.
    return (json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n").encode("utf-8")


def log(step: int, **metrics: Any) -> bool:
    """Appends one metrics line: {"step": step, "total_steps": …, **metrics}.

    `lr`, `loss` and `test_accuracy` are the monitoring chart's curves; any other numeric
    keyword is a series too, `epoch` and `total_steps` are progress (total_steps is added
    when known). The line is written whole with one write and is visible at once. Safe to
    call from several threads. A write that fails (a full disk) warns once on stderr and
    returns False; it never raises, so training goes on.
    """
    global _log_fd, _log_path, _log_warned
    data = _line(step, metrics)
    path = metrics_file()
    with _log_lock:
        try:
            if _log_fd is None or _log_path != path:
                if _log_fd is not None:
                    os.close(_log_fd)
                    _log_fd = None
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
                _log_path = path
            _append_whole(_log_fd, data)
            return True
        except OSError as error:
            if not _log_warned:
                _log_warned = True
                _warn(f"cannot write metrics to {path} ({error}); training goes on, further failures are not reported")
            return False


def _append_whole(fd: int, data: bytes) -> None:
    # One write appends the whole line. Should the disk fill up in the middle of it, cut
    # the half line off again: Trainyard reads a line without its newline as still being
    # written, so the next line would otherwise be glued to it.
    before = _size(fd)
    try:
        written = os.write(fd, data)
        while written < len(data):
            more = os.write(fd, data[written:])
            if more == 0:
                raise OSError(28, os.strerror(28))
            written += more
    except OSError:
        if before is not None:
            try:
                os.ftruncate(fd, before)
            except OSError:
                pass
        raise


def _size(fd: int) -> Optional[int]:
    try:
        info = os.fstat(fd)
        return info.st_size if stat.S_ISREG(info.st_mode) else None
    except OSError:
        return None


# --- stopping --------------------------------------------------------------------------

_stop_signal: Optional[signal.Signals] = None
_handlers_installed = False


def _on_signal(signum: int, _frame: Any) -> None:
    global _stop_signal
    name = signal.Signals(signum).name
    if _stop_signal is not None:
        _warn(f"{name} again while stopping (after {_stop_signal.name}); still saving")
        return
    _stop_signal = signal.Signals(signum)
    _warn(f"{name} received: finishing the current step, then saving a checkpoint")


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("call trainyard.should_stop() first from the main thread (signal handlers live there)")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    _handlers_installed = True


def should_stop() -> bool:
    """True once SIGTERM or SIGINT (Ctrl-C) arrived: save a checkpoint and exit.

    The first call installs the handlers (so call it once before the loop, from the main
    thread); a second signal while stopping only warns, so the checkpoint gets written.
    """
    _install_handlers()
    return _stop_signal is not None


def stop_signal() -> Optional[signal.Signals]:
    """The signal that asked to stop (signal.SIGTERM or SIGINT), or None."""
    return _stop_signal


def stop_exit_code() -> int:
    """The exit code of a stopped trainer: 128 + the signal (143 for SIGTERM, 130 for SIGINT)."""
    return 128 + int(_stop_signal if _stop_signal is not None else signal.SIGTERM)


# --- checkpoints -----------------------------------------------------------------------


def checkpoint_path(name: str) -> str:
    """Where to save checkpoint `name`: in this run's directory."""
    directory = run_dir()
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name)


def resume_path(name: str) -> Optional[str]:
    """The checkpoint `name` of the stopped previous run, when there is one, else None."""
    previous = previous_run_dir()
    if previous is None:
        return None
    path = os.path.join(previous, name)
    return path if os.path.isfile(path) else None


def save_atomic(path: str, write_fn: Callable[[IO[bytes]], Any]) -> str:
    """Saves a file so that it is either the old one or the whole new one, never half.

    `write_fn` gets a binary file opened on a temporary file in the same directory
    (`lambda f: torch.save(state, f)`); it is then flushed, fsynced and renamed over
    `path`. On any error the temporary file is removed, `path` is untouched and the
    error is raised: a checkpoint that could not be saved must not pass silently.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write_fn(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory: str) -> None:
    # The rename is durable only once the directory entry is on disk too.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
