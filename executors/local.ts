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
// A synchronous call must never wait, though, or every run of the worker stops with it:
// a trainer's files are opened with O_NONBLOCK (an open of a FIFO would otherwise wait
// for a writer), anything but a regular file is refused before a read, and the small
// files (pid, exit_code) are read up to a small limit whatever their size.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { closeSync, constants as fs, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
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
  /**
   * Directory holding the run dirs (the app passes `<TRAINYARD_DATA_DIR>/runs`); a relative one is resolved against
   * the current directory.
   */
  runsRoot: string;
}

/**
 * The library, then the operation named by the first argument. The run directories are
 * under the data directory, which is the owner's alone (lib/private-dir.ts): what the
 * wrapper and the trainer create there is too, whichever process runs the worker.
 */
const LOCAL_PROGRAM = `umask 077\n${SHELL_LIBRARY}\n"$@"\n`;

/**
 * How /bin/sh runs `op` here. The operation's arguments (a launch's carry the trainer's
 * environment, secret variables too) travel as variables of the shell, not in its argv:
 * any local account can read a process's command line in /proc, only its owner its
 * environment. The shell moves them back into "$@" and unsets them before `op` runs.
 */
export function localShellInvocation(
  op: ShellOp,
  args: readonly string[],
): { argv: string[]; env: Record<string, string> } {
  const env = shellEnv();
  const names = args.map((_, i) => `TRAINYARD_ARG_${i}`);
  args.forEach((value, i) => (env[names[i]!] = value));
  const unpack =
    names.length === 0 ? '' : `set -- "$@" ${names.map((name) => `"$${name}"`).join(' ')}\nunset ${names.join(' ')}\n`;
  return { argv: ['-c', `${unpack}${LOCAL_PROGRAM}`, 'trainyard', op], env };
}

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
    const code = readSmall(`${handle.runDir}/exit_code`) ?? '';
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
    const line = readSmall(`${runDir}/pid`)?.split('\n')[0];
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
        // Only its existence counts: created, never truncated, and never waited on.
        closeSync(openSync(`${handle.runDir}/stop_requested`, fs.O_WRONLY | fs.O_CREAT | fs.O_NONBLOCK | fs.O_NOCTTY));
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
      const { argv, env } = localShellInvocation(op, args);
      const child = spawn('/bin/sh', argv, {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', (e) =>
        reject(new ExecutorError('COMMAND_FAILED', `cannot run /bin/sh: ${e.message}`, { cause: e })),
      );
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

// Opening never waits (a FIFO without a writer, a tty) and never takes a terminal.
const OPEN_READ = fs.O_RDONLY | fs.O_NONBLOCK | fs.O_NOCTTY;
// The pid line and an exit code are a few dozen bytes; a bigger file is not the wrapper's.
const SMALL_FILE_BYTES = 256;

/**
 * `read(fd, size)` on the file opened for reading, or `missing` if it does not exist;
 * anything but a regular file is NOT_A_REGULAR_FILE, any other failure an ExecutorError
 * naming the file.
 */
function withFile<T>(path: string, missing: T, read: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, OPEN_READ);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return missing;
    throw new ExecutorError('COMMAND_FAILED', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile())
      throw new ExecutorError('NOT_A_REGULAR_FILE', `${path} is ${fileKind(stat)}, not a regular file`);
    return read(fd, stat.size);
  } catch (e) {
    if (e instanceof ExecutorError) throw e;
    throw new ExecutorError('COMMAND_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}

function fileKind(stat: {
  isFIFO(): boolean;
  isDirectory(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'something else';
}

/**
 * The first SMALL_FILE_BYTES of a small regular file as text, or null when it is missing, unreadable or not a regular
 * file.
 */
function readSmall(path: string): string | null {
  try {
    return withFile(path, null, (fd, size) => Buffer.from(readAt(fd, size, 0, SMALL_FILE_BYTES)).toString('utf8'));
  } catch {
    return null;
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

/**
 * A procfs file's text (sized 0 by fstat, so not for readSmall), or null if it cannot be read (the process is gone).
 */
function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: string | number): string[] | null {
  const stat = readProc(`/proc/${pid}/stat`);
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
    if (fields && fields[2] === pgid && fields[3] === pgid && !DEAD.has(fields[0] ?? '') && Number(fields[19]) >= start)
      return true;
  }
  return false;
}
