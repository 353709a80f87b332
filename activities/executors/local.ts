// The `local` executor: trainers on the worker's own host. Operations run
// in /bin/sh from child_process with a minimal environment (so not even the
// wrapper holds the worker's secrets); files are read with fs directly.
// Known limit: a file descriptor the worker itself inherited without
// close-on-exec reaches the trainer too (dash cannot close descriptors above 9);
// Node opens its own with close-on-exec, and sshd sessions start clean.
//
// Files are read with synchronous calls: procfs and a trainer's files in the page
// cache answer in microseconds, while each promise-based call is several trips
// through libuv's thread pool. The watch loop looks at every trainer five times a
// second, so with 200 trainers that overhead was a large part of the worker's time.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  SHELL_LIBRARY,
  ShellExecutor,
  checkAbsolutePath,
  checkHandle,
  checkRange,
  checkRunsRoot,
  decodeTail,
  parseHandle,
  type ShellResult,
  type StopTiming,
} from './base.js';
import type { ShellOp } from './shell.js';
import { ExecutorError, type ProbeResult, type TrainerHandle, type TrainerState } from './types.js';

export interface LocalExecutorOptions extends StopTiming {
  /** Directory holding the run dirs (the app passes `<TRAINYARD_DATA_DIR>/runs`); a relative one is resolved against the current directory. */
  runsRoot: string;
}

/**
 * The library, then the operation named by the first argument. The run directories are
 * under the data directory, which is the owner's alone (lib/private-dir.ts): what the
 * wrapper and the trainer create there is too, whichever process runs the worker.
 */
const LOCAL_PROGRAM = `umask 077\n${SHELL_LIBRARY}\n"$@"\n`;

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The only variables the launcher and wrapper see on the worker's host; the trainer gets LaunchSpec.env alone. */
function shellEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH || DEFAULT_PATH, LC_ALL: 'C' };
  if (process.env.HOME) env.HOME = process.env.HOME;
  return env;
}

export class LocalExecutor extends ShellExecutor {
  readonly kind = 'local' as const;
  private readonly root: string;

  constructor(options: LocalExecutorOptions) {
    super(options);
    this.root = checkRunsRoot(resolve(options.runsRoot));
  }

  /**
   * Reads /proc and the exit-code file directly: the watch loop inspects every trainer
   * several times a second, and a `/bin/sh` fork per look was most of a busy worker's
   * time (DESIGN §8 scale). Same rules as the shell's trainyard_alive (shell.ts).
   */
  override async inspect(handle: TrainerHandle): Promise<TrainerState> {
    checkHandle(handle);
    // Liveness first, then the exit code: the wrapper writes the code before it exits, so
    // a group found gone has left its code already (read in the other order, a trainer
    // ending in between would look gone without one).
    const alive = groupAlive(handle);
    const code = readOrNull(`${handle.runDir}/exit_code`) ?? '';
    const exitCode = /^-?\d+$/.test(code.trim()) ? Number(code.trim()) : null;
    return { alive, exitCode };
  }

  /**
   * Same rules as the shell's trainyard_read_handle and trainyard_signal (shell.ts),
   * without forking: a fork of a worker holding hundreds of MiB blocks its event loop
   * for milliseconds (with 200 trainers starting and stopping, for seconds in all).
   */
  override async readHandle(runDir: string): Promise<TrainerHandle | null> {
    checkAbsolutePath(runDir, 'the run directory');
    const line = readOrNull(`${runDir}/pid`)?.split('\n')[0];
    return parseHandle(line, runDir);
  }

  override async signal(handle: TrainerHandle, sig: 'TERM' | 'KILL'): Promise<void> {
    checkHandle(handle);
    if (sig !== 'TERM' && sig !== 'KILL') {
      throw new ExecutorError('INVALID_ARGUMENT', `unsupported signal ${String(sig)}`);
    }
    // Only while the group is still the trainer's, so a reused PID never gets a stray signal.
    if (!groupAlive(handle)) return;
    // Announced first, for a trainer being forked right now (see the wrapper).
    if (sig === 'TERM') {
      try {
        writeFileSync(`${handle.runDir}/stop_requested`, '');
      } catch {}
    }
    try {
      process.kill(-handle.pgid, sig === 'TERM' ? 'SIGTERM' : 'SIGKILL');
    } catch {}
  }

  async runsRoot(): Promise<string> {
    return this.root;
  }

  protected runShell(op: ShellOp, args: readonly string[]): Promise<ShellResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', LOCAL_PROGRAM, 'trainyard', op, ...args], {
        env: shellEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', (e) => reject(new ExecutorError('COMMAND_FAILED', `cannot run /bin/sh: ${e.message}`, { cause: e })));
      child.on('close', (code, signal) => {
        resolve({
          code: code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
      });
    });
  }

  async readChunk(path: string, offset: number, maxBytes: number): Promise<Uint8Array> {
    checkAbsolutePath(path, 'the file');
    checkRange(offset, maxBytes);
    return withFile(path, new Uint8Array(0), (fd, size) => readAt(fd, size, offset, maxBytes));
  }

  async tail(path: string, maxBytes: number): Promise<string> {
    checkAbsolutePath(path, 'the file');
    checkRange(0, maxBytes);
    return withFile(path, '', (fd, size) => decodeTail(readAt(fd, size, Math.max(0, size - maxBytes), maxBytes)));
  }

  async probe(): Promise<ProbeResult> {
    try {
      return await this.probeMachine();
    } catch (e) {
      return { reachable: false, error: e instanceof Error ? e.message : String(e) };
    }
  }

  async close(): Promise<void> {}
}

/**
 * `read(fd, size)` on the file opened for reading, or `missing` if it does not exist;
 * any other failure is an ExecutorError naming the file.
 */
function withFile<T>(path: string, missing: T, read: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return missing;
    throw new ExecutorError('COMMAND_FAILED', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return read(fd, fstatSync(fd).size);
  } catch (e) {
    throw new ExecutorError('COMMAND_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/** Up to maxBytes from offset, sized by what the file (of `size` bytes) holds there: mostly a few lines or nothing. */
function readAt(fd: number, size: number, offset: number, maxBytes: number): Uint8Array {
  const want = Math.min(maxBytes, Math.max(0, size - offset));
  if (want === 0) return new Uint8Array(0);
  const buf = Buffer.allocUnsafe(want);
  let filled = 0;
  while (filled < want) {
    const bytesRead = readSync(fd, buf, filled, want - filled, offset + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}

/** A small file's text, or null if it cannot be read (gone, or never written). */
function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: string | number): string[] | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  return stat === null ? null : stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
}

const DEAD = new Set(['Z', 'X', 'x']);

/**
 * The leader alive with its recorded start time: alive. Its PID owned by a process with
 * another start time: reused, so the group is gone. Leader gone or a zombie: alive while
 * any non-zombie process of its group and session, started no earlier, remains.
 */
function groupAlive(handle: TrainerHandle): boolean {
  const leader = statFields(handle.pid);
  if (leader) {
    if (leader[19] !== handle.startTime) return false;
    if (!DEAD.has(leader[0] ?? '')) return true;
  }
  try {
    process.kill(-handle.pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const pgid = String(handle.pgid);
  const start = Number(handle.startTime);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(entry);
    if (fields && fields[2] === pgid && fields[3] === pgid && !DEAD.has(fields[0] ?? '') && Number(fields[19]) >= start) return true;
  }
  return false;
}
