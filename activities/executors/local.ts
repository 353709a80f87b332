// The `local` executor: trainers on the worker's own host. Operations run
// in /bin/sh from child_process with a minimal environment (so not even the
// wrapper holds the worker's secrets); files are read with fs directly.
// Known limit: a file descriptor the worker itself inherited without
// close-on-exec reaches the trainer too (dash cannot close descriptors above 9);
// Node opens its own with close-on-exec, and sshd sessions start clean.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { open, readdir, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SHELL_LIBRARY, ShellExecutor, checkAbsolutePath, checkHandle, checkRange, checkRunsRoot, decodeTail, type ShellResult, type StopTiming } from './base.js';
import type { ShellOp } from './shell.js';
import { ExecutorError, type ProbeResult, type TrainerHandle, type TrainerState } from './types.js';

export interface LocalExecutorOptions extends StopTiming {
  /** Directory holding the run dirs (the app passes `<TRAINYARD_DATA_DIR>/runs`); a relative one is resolved against the current directory. */
  runsRoot: string;
}

/** The library, then the operation named by the first argument. */
const LOCAL_PROGRAM = `${SHELL_LIBRARY}\n"$@"\n`;

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
    const alive = await groupAlive(handle);
    const code = await readFile(`${handle.runDir}/exit_code`, 'utf8').catch(() => '');
    const exitCode = /^-?\d+$/.test(code.trim()) ? Number(code.trim()) : null;
    return { alive, exitCode };
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
    const file = await openOrNull(path);
    if (!file) return new Uint8Array(0);
    try {
      // Sized by what the file holds past the offset: the watch loop reads every trainer's
      // file several times a second, mostly finding a few lines or nothing.
      const want = Math.min(maxBytes, Math.max(0, (await file.stat()).size - offset));
      if (want === 0) return new Uint8Array(0);
      const buf = Buffer.allocUnsafe(want);
      let filled = 0;
      while (filled < want) {
        const { bytesRead } = await file.read(buf, filled, want - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return buf.subarray(0, filled);
    } finally {
      await file.close();
    }
  }

  async tail(path: string, maxBytes: number): Promise<string> {
    checkAbsolutePath(path, 'the file');
    checkRange(0, maxBytes);
    const file = await openOrNull(path);
    if (!file) return '';
    let size: number;
    try {
      size = (await file.stat()).size;
    } finally {
      await file.close();
    }
    const start = Math.max(0, size - maxBytes);
    return decodeTail(await this.readChunk(path, start, size - start));
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

async function openOrNull(path: string) {
  try {
    return await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ExecutorError('COMMAND_FAILED', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
async function statFields(pid: string | number): Promise<string[] | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat === null ? null : stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
}

const DEAD = new Set(['Z', 'X', 'x']);

/**
 * The leader alive with its recorded start time: alive. Its PID owned by a process with
 * another start time: reused, so the group is gone. Leader gone or a zombie: alive while
 * any non-zombie process of its group and session, started no earlier, remains.
 */
async function groupAlive(handle: TrainerHandle): Promise<boolean> {
  const leader = await statFields(handle.pid);
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
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = await statFields(entry);
    if (fields && fields[2] === pgid && fields[3] === pgid && !DEAD.has(fields[0] ?? '') && Number(fields[19]) >= start) return true;
  }
  return false;
}
