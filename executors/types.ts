// The one interface through which Trainyard launches, watches and stops a
// trainer on a machine, whichever way it reaches the machine (`local`: the
// worker's own host; `ssh`: a target machine over SSH).

export interface LaunchSpec {
  /**
   * Absolute directory on the machine, inside the executor's runs root. Launch
   * creates it and fails with RUN_DIR_EXISTS if it already exists, so a
   * retried launch can never start a second trainer in the same run dir (use
   * `readHandle` to find the trainer a lost launch may have started).
   */
  runDir: string;
  /** The template's shell command: the one string meant for a shell, run by `sh -c`. */
  command: string;
  /**
   * Where the command runs: absolute, or relative to the machine user's home
   * directory (`~/x` works too). Default: the run directory.
   */
  workingDir?: string;
  /**
   * The COMPLETE trainer environment, already filtered by the caller: the
   * trainer sees these variables and nothing else (not even the worker's or
   * the SSH session's). Include PATH, HOME and LANG if the trainer needs them.
   */
  env: Record<string, string>;
}

export interface TrainerHandle {
  /** PID of the run's wrapper, which leads the trainer's session and process group. */
  pid: number;
  pgid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot), so a reused PID is never taken for the trainer. */
  startTime: string;
  runDir: string;
}

export interface TrainerState {
  /**
   * Some process of the trainer's process group is still running (zombies do not count; the leader's identity is
   * checked).
   */
  alive: boolean;
  /**
   * The trainer command's exit status from the run's `exit_code` file once written (128+n when killed by signal n);
   * null before, or when the whole group was KILLed.
   */
  exitCode: number | null;
}

export interface GpuInfo {
  index: number;
  name: string;
  memoryMiB: number;
}

export interface ProbeResult {
  reachable: boolean;
  /** ssh only: false when the server presented another key than the pinned one. */
  hostKeyMatches?: boolean;
  /** Free bytes on the file system of the runs root. */
  freeDiskBytes?: number;
  /** From nvidia-smi when the machine has it, else []. */
  gpus?: GpuInfo[];
  error?: string;
}

export interface StopResult {
  /** True when the group outlived the grace period and was sent SIGKILL. */
  killed: boolean;
}

export interface Executor {
  readonly kind: 'local' | 'ssh';
  /** Absolute runs root on the machine (for ssh, `~` is resolved against the remote home on first use). */
  runsRoot(): Promise<string>;
  /**
   * Starts the trainer detached; resolves once its PID and start time are
   * recorded (the trainer is alive). CONNECTION_LOST means it may or may not
   * have started: `readHandle(spec.runDir)` tells.
   */
  launch(spec: LaunchSpec): Promise<TrainerHandle>;
  /** The handle recorded in a run dir, or null when no trainer was started there. */
  readHandle(runDir: string): Promise<TrainerHandle | null>;
  inspect(handle: TrainerHandle): Promise<TrainerState>;
  /** Signals the whole process group; a group already gone (or a PID now owned by another process) is not an error. */
  signal(handle: TrainerHandle, sig: 'TERM' | 'KILL'): Promise<void>;
  /**
   * TERM, up to `graceMs` for the group to be gone, then KILL; resolves only once the group is gone (else throws
   * STOP_TIMEOUT).
   */
  stop(handle: TrainerHandle, graceMs: number): Promise<StopResult>;
  /**
   * Exactly the bytes of `path` from `offset`, at most `maxBytes`; a missing file reads as
   * empty. Anything but a regular file (a FIFO, a device, a directory) is refused with
   * NOT_A_REGULAR_FILE without ever waiting on it.
   */
  readChunk(path: string, offset: number, maxBytes: number): Promise<Uint8Array>;
  /**
   * The last `maxBytes` of a (log) file as text, starting at a character boundary; a missing file gives ''; not a
   * regular file: NOT_A_REGULAR_FILE.
   */
  tail(path: string, maxBytes: number): Promise<string>;
  /**
   * Removes a run directory; refuses (OUTSIDE_RUNS_ROOT) anything that is not strictly inside the runs root. A
   * missing dir is fine.
   */
  removeRunDir(runDir: string): Promise<void>;
  /**
   * The run directories directly inside `dir` (a process's directory in the runs root), as
   * absolute paths: subdirectories named like launch.ts names them, not symlinks. A missing
   * `dir` has none; one outside the runs root is refused (OUTSIDE_RUNS_ROOT).
   */
  listRunDirs(dir: string): Promise<string[]>;
  /** Never throws for an unreachable machine: reports it. */
  probe(): Promise<ProbeResult>;
  close(): Promise<void>;
}

export type ExecutorErrorCode =
  /** The server presented another host key than the pinned fingerprint (the message names both). */
  | 'HOST_KEY_MISMATCH'
  /** No host key fingerprint pinned and `acceptAnyHostKey` not set: nothing is sent to the server. */
  | 'HOST_KEY_NOT_PINNED'
  /** No SSH connection could be made (refused, timed out, handshake failed). */
  | 'UNREACHABLE'
  | 'AUTH_FAILED'
  /** The connection dropped while an operation was under way: it may or may not have taken effect. */
  | 'CONNECTION_LOST'
  | 'INVALID_ARGUMENT'
  | 'OUTSIDE_RUNS_ROOT'
  | 'RUN_DIR_EXISTS'
  | 'LAUNCH_FAILED'
  /** The group was still alive after SIGKILL and the kill wait. */
  | 'STOP_TIMEOUT'
  /** A command on the machine failed unexpectedly (the message carries its stderr). */
  | 'COMMAND_FAILED'
  /**
   * A file the trainer should have left a regular file is a FIFO, a device or a directory: it is never opened for
   * reading.
   */
  | 'NOT_A_REGULAR_FILE';

/** Every failure an executor expects; `code` says which (a plain Error is a bug). */
export class ExecutorError extends Error {
  override readonly name = 'ExecutorError';
  constructor(
    readonly code: ExecutorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isExecutorError(err: unknown, code?: ExecutorErrorCode): err is ExecutorError {
  return err instanceof ExecutorError && (code === undefined || err.code === code);
}

/** A transport failure as CONNECTION_LOST (typed errors pass through). */
export function connectionLost(err: unknown): ExecutorError {
  if (isExecutorError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ExecutorError('CONNECTION_LOST', `the SSH connection was lost: ${message}`, { cause: err });
}
