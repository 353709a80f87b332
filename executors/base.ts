// What both executors do the same way: everything that runs on the machine
// is one of the fixed shell functions of shell.ts and wrapper.ts, so `local`
// and `ssh` differ only in how a call reaches /bin/sh and how files are read.

import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  REMOVE_OUTSIDE_ROOT_STATUS,
  SHELL_FUNCTIONS,
  assertShellSafeText,
  taggedLines,
  type ShellOp,
} from './shell.js';
import {
  ExecutorError,
  type Executor,
  type GpuInfo,
  type LaunchSpec,
  type ProbeResult,
  type StopResult,
  type TrainerHandle,
  type TrainerState,
} from './types.js';
import { LAUNCH_FUNCTION, LAUNCH_STATUS, launchArgs } from './wrapper.js';

/** Every function a machine's shell needs, defined once per shell process. */
export const SHELL_LIBRARY = `${SHELL_FUNCTIONS}${LAUNCH_FUNCTION}`;

export interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ShellOptions {
  /** The operation is safe to run twice: a transport may retry it once on a fresh connection. */
  idempotent?: boolean;
  /**
   * The operation may take long (removing a big run directory): a transport applies its long budget, not the usual
   * command timeout.
   */
  slow?: boolean;
}

export interface StopTiming {
  /** How often stop looks whether the group is gone. */
  pollIntervalMs?: number;
  /** How long stop waits for the group to vanish after SIGKILL before giving up. */
  killWaitMs?: number;
}

/** An absolute, already normal path (no `.`/`..` segments, no trailing slash): the form every path must arrive in. */
export function checkAbsolutePath(path: string, what: string): string {
  assertShellSafeText(path, what);
  if (!path.startsWith('/') || posix.normalize(path) !== path || path.split('/').includes('..')) {
    throw new ExecutorError('INVALID_ARGUMENT', `${what} must be a normal absolute path, got ${JSON.stringify(path)}`);
  }
  if (path.length > 1 && path.endsWith('/')) {
    throw new ExecutorError('INVALID_ARGUMENT', `${what} must not end with a slash, got ${JSON.stringify(path)}`);
  }
  return path;
}

/** `path` strictly below `root` (lexically; the shell side re-checks physically where it matters). */
export function checkInsideRoot(root: string, path: string, what: string): string {
  checkAbsolutePath(path, what);
  const base = posix.basename(path);
  if (!path.startsWith(`${root}/`) || base === '' || base === '.' || base === '..') {
    throw new ExecutorError(
      'OUTSIDE_RUNS_ROOT',
      `${what} ${JSON.stringify(path)} is not inside the runs root ${JSON.stringify(root)}`,
    );
  }
  return path;
}

export function checkRunsRoot(root: string): string {
  checkAbsolutePath(root, 'the runs root');
  if (root === '/') {
    throw new ExecutorError('INVALID_ARGUMENT', 'the runs root cannot be /');
  }
  return root;
}

/** Reads are bounded: a caller pages through a big file. */
export function checkRange(offset: number, maxBytes: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    offset < 0 ||
    !Number.isSafeInteger(maxBytes) ||
    maxBytes < 0 ||
    maxBytes > 64 * 1024 * 1024
  ) {
    throw new ExecutorError('INVALID_ARGUMENT', `invalid read range offset=${offset} maxBytes=${maxBytes}`);
  }
}

const HANDLE_LINE = /^(\d+) (\d+) (\d+)$/;

export function parseHandle(line: string | undefined, runDir: string): TrainerHandle | null {
  const m = line === undefined ? null : HANDLE_LINE.exec(line.trim());
  if (!m) return null;
  return { pid: Number(m[1]), pgid: Number(m[2]), startTime: m[3] ?? '', runDir };
}

export function checkHandle(handle: TrainerHandle): void {
  const ok =
    Number.isSafeInteger(handle.pid) &&
    handle.pid > 1 &&
    Number.isSafeInteger(handle.pgid) &&
    handle.pgid > 1 &&
    /^\d+$/.test(handle.startTime);
  if (!ok) {
    throw new ExecutorError('INVALID_ARGUMENT', `invalid trainer handle ${JSON.stringify(handle)}`);
  }
  checkAbsolutePath(handle.runDir, 'the run directory');
}

/** Text of a log tail: skips a multi-byte character cut by the start of the window. */
export function decodeTail(bytes: Uint8Array): string {
  let start = 0;
  while (start < bytes.length && start < 3 && ((bytes[start] ?? 0) & 0xc0) === 0x80) start += 1;
  return new TextDecoder('utf-8').decode(bytes.subarray(start));
}

function parseDfFree(lines: string[]): number | undefined {
  // `df -Pk`: Filesystem 1024-blocks Used Available Capacity Mounted-on. Names
  // may hold spaces, so the available column is found next to the `NN%` one.
  const data = lines.at(-1);
  if (data === undefined) return undefined;
  const fields = data.trim().split(/\s+/);
  const capacity = fields.findIndex((f, i) => i > 0 && /^\d+%$/.test(f));
  const available = capacity > 0 ? Number(fields[capacity - 1]) : NaN;
  return Number.isFinite(available) ? available * 1024 : undefined;
}

function parseGpus(lines: string[]): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of lines) {
    const first = line.indexOf(',');
    const last = line.lastIndexOf(',');
    if (first < 0 || last <= first) continue;
    const index = Number(line.slice(0, first).trim());
    const memoryMiB = Number(line.slice(last + 1).trim());
    if (!Number.isInteger(index) || !Number.isFinite(memoryMiB)) continue;
    gpus.push({ index, name: line.slice(first + 1, last).trim(), memoryMiB });
  }
  return gpus;
}

/** How launch.ts names a run directory: `run-<number>-<run id>-…` in letters, digits and dashes. */
const RUN_DIR_NAME = /^run-\d+-\d+-[0-9a-z-]+$/;

export abstract class ShellExecutor implements Executor {
  abstract readonly kind: 'local' | 'ssh';
  private readonly pollIntervalMs: number;
  private readonly killWaitMs: number;

  protected constructor(timing: StopTiming = {}) {
    this.pollIntervalMs = timing.pollIntervalMs ?? 50;
    this.killWaitMs = timing.killWaitMs ?? 10_000;
  }

  /** Runs one function of SHELL_LIBRARY with the given arguments in /bin/sh on the machine. */
  protected abstract runShell(op: ShellOp, args: readonly string[], options?: ShellOptions): Promise<ShellResult>;

  abstract runsRoot(): Promise<string>;
  abstract readChunk(path: string, offset: number, maxBytes: number): Promise<Uint8Array>;
  abstract tail(path: string, maxBytes: number): Promise<string>;
  abstract close(): Promise<void>;

  /** The machine user's home directory. */
  protected async homeDir(): Promise<string> {
    const res = await this.runChecked('trainyard_home', [], 'reading $HOME', true);
    const home = taggedLines(res.stdout, 'trainyard-home').at(-1);
    if (home === undefined || !home.startsWith('/')) {
      throw new ExecutorError(
        'COMMAND_FAILED',
        `the machine reports no usable home directory (${JSON.stringify(home)})`,
      );
    }
    return home.length > 1 ? home.replace(/\/+$/, '') : home;
  }

  async launch(spec: LaunchSpec): Promise<TrainerHandle> {
    const root = await this.runsRoot();
    const runDir = checkInsideRoot(root, spec.runDir, 'the run directory');
    const res = await this.runShell('trainyard_launch', launchArgs({ ...spec, runDir }));
    if (res.code === LAUNCH_STATUS.runDirExists) {
      throw new ExecutorError('RUN_DIR_EXISTS', `the run directory ${runDir} already exists`);
    }
    const handle = res.code === 0 ? parseHandle(taggedLines(res.stdout, 'trainyard-pid').at(-1), runDir) : null;
    if (!handle) {
      throw new ExecutorError(
        'LAUNCH_FAILED',
        `launch in ${runDir} failed (exit ${res.code}): ${res.stderr.trim() || res.stdout.trim()}`,
      );
    }
    return handle;
  }

  async readHandle(runDir: string): Promise<TrainerHandle | null> {
    checkAbsolutePath(runDir, 'the run directory');
    const res = await this.runChecked('trainyard_read_handle', [runDir], 'reading the run handle', true);
    return parseHandle(taggedLines(res.stdout, 'trainyard-pid').at(-1), runDir);
  }

  async inspect(handle: TrainerHandle): Promise<TrainerState> {
    checkHandle(handle);
    const args = [String(handle.pid), String(handle.pgid), handle.startTime, handle.runDir];
    const res = await this.runChecked('trainyard_inspect', args, 'inspecting the trainer', true);
    const m = /^([01]) ?(-?\d+)?\s*$/.exec(taggedLines(res.stdout, 'trainyard-state').at(-1) ?? '');
    if (!m) {
      throw new ExecutorError('COMMAND_FAILED', `unexpected inspect output: ${res.stdout.trim()} ${res.stderr.trim()}`);
    }
    return { alive: m[1] === '1', exitCode: m[2] === undefined ? null : Number(m[2]) };
  }

  async signal(handle: TrainerHandle, sig: 'TERM' | 'KILL'): Promise<void> {
    checkHandle(handle);
    if (sig !== 'TERM' && sig !== 'KILL') {
      throw new ExecutorError('INVALID_ARGUMENT', `unsupported signal ${String(sig)}`);
    }
    const args = [sig, String(handle.pid), String(handle.pgid), handle.startTime, handle.runDir];
    await this.runChecked('trainyard_signal', args, `sending ${sig}`, true);
  }

  async stop(handle: TrainerHandle, graceMs: number): Promise<StopResult> {
    await this.signal(handle, 'TERM');
    if (await this.waitGone(handle, Math.max(0, graceMs))) return { killed: false };
    await this.signal(handle, 'KILL');
    if (await this.waitGone(handle, this.killWaitMs)) return { killed: true };
    throw new ExecutorError(
      'STOP_TIMEOUT',
      `the trainer's process group ${handle.pgid} was still alive ${this.killWaitMs} ms after SIGKILL`,
    );
  }

  private async waitGone(handle: TrainerHandle, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (!(await this.inspect(handle)).alive) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await sleep(Math.min(this.pollIntervalMs, left));
    }
  }

  async removeRunDir(runDir: string): Promise<void> {
    const root = await this.runsRoot();
    checkInsideRoot(root, runDir, 'the run directory');
    const res = await this.runShell('trainyard_remove_run_dir', [root, runDir], { idempotent: true, slow: true });
    if (res.code === REMOVE_OUTSIDE_ROOT_STATUS) {
      throw new ExecutorError(
        'OUTSIDE_RUNS_ROOT',
        res.stderr.trim() || `${runDir} is not inside the runs root ${root}`,
      );
    }
    if (res.code !== 0) {
      throw new ExecutorError('COMMAND_FAILED', `removing ${runDir} failed (exit ${res.code}): ${res.stderr.trim()}`);
    }
  }

  async listRunDirs(dir: string): Promise<string[]> {
    const root = await this.runsRoot();
    const inside = checkInsideRoot(root, dir, 'the directory');
    const res = await this.runChecked('trainyard_list_runs', [inside], 'listing run directories', true);
    // Only names Trainyard gives (launch.ts): whatever else a local user left there is not a run.
    return taggedLines(res.stdout, 'trainyard-run')
      .filter((name) => RUN_DIR_NAME.test(name))
      .map((name) => `${inside}/${name}`)
      .sort();
  }

  /** Disk and GPUs; transports add reachability and host-key facts. */
  protected async probeMachine(): Promise<ProbeResult> {
    const root = await this.runsRoot();
    const res = await this.runChecked('trainyard_probe', [root], 'probing the machine', true);
    const freeDiskBytes = parseDfFree(taggedLines(res.stdout, 'trainyard-df'));
    return {
      reachable: true,
      ...(freeDiskBytes === undefined ? {} : { freeDiskBytes }),
      gpus: parseGpus(taggedLines(res.stdout, 'trainyard-gpu')),
    };
  }

  abstract probe(): Promise<ProbeResult>;

  private async runChecked(
    op: ShellOp,
    args: readonly string[],
    what: string,
    idempotent = false,
  ): Promise<ShellResult> {
    const res = await this.runShell(op, args, { idempotent });
    if (res.code !== 0) {
      throw new ExecutorError('COMMAND_FAILED', `${what} failed (exit ${res.code}): ${res.stderr.trim()}`);
    }
    return res;
  }
}
