// The executors against real processes: `local` on this host and `ssh` to a
// real sshd on loopback, one behavioural suite for both.

import { spawn, execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ExecutorError,
  LocalExecutor,
  SshExecutor,
  fetchHostKeyFingerprint,
  isExecutorError,
  type Executor,
  type SshExecutorOptions,
  type TrainerHandle,
} from '../../executors/index.js';
import { startSshd, type TestSshd } from '../support/sshd.js';

// Quotes, a space and a command substitution in the runs root test path quoting end to end.
const BASE = join(tmpdir(), `trainyard-executors-${randomUUID().slice(0, 8)}`);
const HOSTILE_DIR = `it's a $(touch ${BASE}/pwned-dir) dir`;
const PATH_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };

let sshd: TestSshd;

function sshOptions(overrides: Partial<SshExecutorOptions> = {}): SshExecutorOptions {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    runsRoot: join(BASE, 'ssh', HOSTILE_DIR),
    readyTimeoutMs: 5000,
    pollIntervalMs: 25,
    ...overrides,
  };
}

beforeAll(async () => {
  mkdirSync(BASE, { recursive: true });
  sshd = await startSshd();
});

afterAll(async () => {
  await sshd?.stop();
  rmSync(BASE, { recursive: true, force: true });
});

/** A process that is still running: absent and zombie processes are gone. */
function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZXx]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/**
 * The PID a trainer wrote for its background child, once that child runs
 * `sleep`: until its exec, a forked shell child still has the shell's TERM
 * handler and would miss a stop (a race of the trainer's shell, not ours).
 */
async function sleepingChild(dir: string): Promise<number> {
  const file = join(dir, 'child.pid');
  const pid = await eventually(
    async () => (existsSync(file) ? Number(readFileSync(file, 'utf8')) : 0),
    (p) => p > 0 && readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep\0'),
  );
  expect(processRunning(pid)).toBe(true);
  return pid;
}

async function eventually<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) return value;
    await sleep(20);
  }
}

async function expectCode(promise: Promise<unknown>, code: ExecutorError['code']): Promise<ExecutorError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isExecutorError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
  return error as ExecutorError;
}

/** Parses `env -0` output. */
function parseEnv(dump: Buffer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of dump.toString('utf8').split('\0').filter(Boolean)) {
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

describe.each([
  ['local', () => new LocalExecutor({ runsRoot: join(BASE, 'local', HOSTILE_DIR), pollIntervalMs: 25 })],
  ['ssh', () => new SshExecutor(sshOptions())],
] as const)('%s executor', (_kind, make) => {
  let executor: Executor;
  let root: string;
  const runDir = () => join(root, `run-${randomUUID().slice(0, 8)}`);

  beforeAll(async () => {
    executor = make();
    root = await executor.runsRoot();
  });
  afterAll(async () => {
    await executor.close();
  });

  it('launches a live trainer, then records its exit code', async () => {
    const handle = await executor.launch({ runDir: runDir(), command: 'sleep 0.3; exit 7', env: PATH_ENV });
    expect(handle.pid).toBe(handle.pgid);
    const stat = readFileSync(`/proc/${handle.pid}/stat`, 'utf8');
    expect(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]).toBe(handle.startTime);
    expect(await executor.inspect(handle)).toEqual({ alive: true, exitCode: null });
    expect(await executor.readHandle(handle.runDir)).toEqual(handle);

    const done = await eventually(
      () => executor.inspect(handle),
      (s) => !s.alive,
    );
    expect(done).toEqual({ alive: false, exitCode: 7 });
  });

  it('launches fast', async () => {
    const samples: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const started = performance.now();
      await executor.launch({ runDir: runDir(), command: 'exit 0', env: PATH_ENV });
      samples.push(performance.now() - started);
    }
    console.log(`${_kind} bare launch ms: ${samples.map((ms) => ms.toFixed(1)).join(' ')}`);
    expect(Math.min(...samples)).toBeLessThan(100);
  });

  it('gives the trainer exactly the given environment, never the server’s', async () => {
    process.env.DATABASE_URL = 'postgres://server-secret@db/trainyard';
    try {
      const dir = runDir();
      const env = { ...PATH_ENV, TRAINYARD_RUN_DIR: dir, HOME: '/nonexistent-home', LANG: 'C.UTF-8' };
      const handle = await executor.launch({ runDir: dir, command: 'env -0 > "$TRAINYARD_RUN_DIR/env.dump"', env });
      expect(
        await eventually(
          () => executor.inspect(handle),
          (s) => !s.alive,
        ),
      ).toEqual({ alive: false, exitCode: 0 });

      const seen = parseEnv(readFileSync(join(dir, 'env.dump')));
      const { PWD, SHLVL, _: underscore, OLDPWD, ...given } = seen;
      void [SHLVL, underscore, OLDPWD];
      expect(given).toEqual(env);
      expect(PWD).toBe(dir);
      expect(seen.DATABASE_URL).toBeUndefined();
    } finally {
      delete process.env.DATABASE_URL;
    }
  });

  it('passes hostile values verbatim and runs nothing but the command', async () => {
    const marker = join(BASE, `pwned-${randomUUID().slice(0, 8)}`);
    const values = [
      `; touch ${marker}`,
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `'; touch ${marker}; '`,
      `"; touch ${marker}; "`,
      `\\'\n$(touch ${marker})\n\\`,
      'line one\nline two\n',
      'ünïcödé ✓ 😀 日本語',
      '',
    ];
    const env: Record<string, string> = { ...PATH_ENV };
    values.forEach((value, i) => (env[`HOSTILE_${i}`] = value));
    const dir = join(root, `run $(touch ${marker}) 'q' \`x\``);
    env.TRAINYARD_RUN_DIR = dir;
    const handle = await executor.launch({
      runDir: dir,
      command: 'env -0 > "$TRAINYARD_RUN_DIR/env.dump"',
      env,
      workingDir: dir,
    });
    expect(
      await eventually(
        () => executor.inspect(handle),
        (s) => !s.alive,
      ),
    ).toEqual({ alive: false, exitCode: 0 });

    const seen = parseEnv(readFileSync(join(dir, 'env.dump')));
    values.forEach((value, i) => expect(seen[`HOSTILE_${i}`], `HOSTILE_${i}`).toBe(value));
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(BASE, 'pwned-dir'))).toBe(false);
  });

  it('stops a trainer that honours TERM: its handler runs, its children go, its exit code is kept', async () => {
    const dir = runDir();
    const command = [
      `trap 'echo stopped > "$TRAINYARD_RUN_DIR/term-marker"; exit 0' TERM`,
      'sleep 30 & echo $! > "$TRAINYARD_RUN_DIR/child.pid"',
      'wait',
    ].join('\n');
    const handle = await executor.launch({ runDir: dir, command, env: { ...PATH_ENV, TRAINYARD_RUN_DIR: dir } });
    const child = await sleepingChild(dir);

    expect(await executor.stop(handle, 5000)).toEqual({ killed: false });
    expect(readFileSync(join(dir, 'term-marker'), 'utf8')).toBe('stopped\n');
    expect(processRunning(child)).toBe(false);
    expect(await executor.inspect(handle)).toEqual({ alive: false, exitCode: 0 });
  });

  it('KILLs a trainer that ignores TERM after the grace period, and returns only once it is gone', async () => {
    const dir = runDir();
    const command = `trap '' TERM; sleep 30 & echo $! > "$TRAINYARD_RUN_DIR/child.pid"; wait`;
    const handle = await executor.launch({ runDir: dir, command, env: { ...PATH_ENV, TRAINYARD_RUN_DIR: dir } });
    const child = await sleepingChild(dir);

    const started = Date.now();
    expect(await executor.stop(handle, 400)).toEqual({ killed: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(processRunning(handle.pid)).toBe(false);
    expect(processRunning(child)).toBe(false);
    expect(await executor.inspect(handle)).toEqual({ alive: false, exitCode: null });
  });

  it('stops a trainer TERMed the moment launch returns without needing KILL', async () => {
    for (let i = 0; i < 10; i += 1) {
      const handle = await executor.launch({ runDir: runDir(), command: 'sleep 30', env: PATH_ENV });
      expect(await executor.stop(handle, 3000)).toEqual({ killed: false });
      expect(await executor.inspect(handle)).toEqual({ alive: false, exitCode: 143 });
    }
  });

  it('counts the group alive while a child outlives the trainer, and stops that child too', async () => {
    const dir = runDir();
    const command = `(trap '' TERM; exec sleep 30) & echo $! > "$TRAINYARD_RUN_DIR/child.pid"; exit 3`;
    const handle = await executor.launch({ runDir: dir, command, env: { ...PATH_ENV, TRAINYARD_RUN_DIR: dir } });
    const state = await eventually(
      () => executor.inspect(handle),
      (s) => s.exitCode !== null,
    );
    expect(state).toEqual({ alive: true, exitCode: 3 });
    const child = await sleepingChild(dir);

    expect(await executor.stop(handle, 200)).toEqual({ killed: true });
    expect(processRunning(child)).toBe(false);
    expect(await executor.inspect(handle)).toEqual({ alive: false, exitCode: 3 });
  });

  it('never takes a handle with another start time for the trainer', async () => {
    const handle = await executor.launch({ runDir: runDir(), command: 'sleep 30', env: PATH_ENV });
    const stale: TrainerHandle = { ...handle, startTime: String(Number(handle.startTime) - 1) };
    expect((await executor.inspect(stale)).alive).toBe(false);
    await executor.signal(stale, 'KILL');
    expect((await executor.inspect(handle)).alive).toBe(true);
    expect(await executor.stop(handle, 2000)).toEqual({ killed: false });
    await executor.signal(handle, 'TERM'); // a group already gone is not an error
  });

  it('refuses to launch twice into one run dir', async () => {
    const dir = runDir();
    const handle = await executor.launch({ runDir: dir, command: 'exit 0', env: PATH_ENV });
    await expectCode(executor.launch({ runDir: dir, command: 'exit 0', env: PATH_ENV }), 'RUN_DIR_EXISTS');
    expect(await executor.readHandle(dir)).toEqual(handle);
    expect(await executor.readHandle(runDir())).toBeNull();
    await expectCode(
      executor.launch({ runDir: '/tmp/elsewhere', command: 'exit 0', env: PATH_ENV }),
      'OUTSIDE_RUNS_ROOT',
    );
  });

  it('reports a working directory it cannot enter through the exit code and stderr', async () => {
    const dir = runDir();
    const handle = await executor.launch({
      runDir: dir,
      command: 'exit 0',
      env: PATH_ENV,
      workingDir: '/nonexistent/dir',
    });
    expect(
      await eventually(
        () => executor.inspect(handle),
        (s) => !s.alive,
      ),
    ).toEqual({ alive: false, exitCode: 126 });
    expect(await executor.tail(join(dir, 'stderr.log'), 1000)).toContain('/nonexistent/dir');
  });

  it('reads exact bytes from any offset, multi-byte characters cut anywhere', async () => {
    const dir = runDir();
    mkdirSync(dir, { recursive: true });
    const bytes = Buffer.concat([
      Buffer.from('héllo wörld ✓ 😀 日本語\n'.repeat(40)),
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    ]);
    const file = join(dir, 'metrics.jsonl');
    writeFileSync(file, bytes);

    // Small chunks cut the first lines' two-, three- and four-byte characters at every byte; twenty
    // reads each are enough for that (over SSH each read is a round trip). Large ones read it all.
    for (const chunk of [1, 3, 7, 1000, 100_000]) {
      const parts: Buffer[] = [];
      for (let offset = 0; ;) {
        const part = await executor.readChunk(file, offset, chunk);
        if (part.length === 0) break;
        expect(part.length).toBeLessThanOrEqual(chunk);
        parts.push(Buffer.from(part));
        offset += part.length;
        if (chunk < 1000 && offset >= chunk * 20) break;
      }
      const read = Buffer.concat(parts);
      expect(read.equals(bytes.subarray(0, read.length)), `chunk ${chunk}`).toBe(true);
      expect(read.length).toBe(chunk < 1000 ? chunk * 20 : bytes.length);
    }
    expect(Buffer.from(await executor.readChunk(file, 5, 4)).equals(bytes.subarray(5, 9))).toBe(true);
    expect(await executor.readChunk(file, bytes.length + 10, 10)).toHaveLength(0);
    expect(await executor.readChunk(join(dir, 'missing'), 0, 10)).toHaveLength(0);

    const text = Buffer.from('line ✓ one\nline 😀 two\n');
    writeFileSync(join(dir, 'stdout.log'), text);
    expect(await executor.tail(join(dir, 'stdout.log'), 1000)).toBe(text.toString());
    expect(await executor.tail(join(dir, 'stdout.log'), 7)).toBe(' two\n'); // starts inside 😀
    expect(await executor.tail(join(dir, 'missing.log'), 100)).toBe('');
  });

  it('removes run dirs inside the runs root only, following no symlink out', async () => {
    const handle = await executor.launch({ runDir: runDir(), command: 'exit 0', env: PATH_ENV });
    await eventually(
      () => executor.inspect(handle),
      (s) => !s.alive,
    );
    await executor.removeRunDir(handle.runDir);
    expect(existsSync(handle.runDir)).toBe(false);
    await executor.removeRunDir(handle.runDir); // already gone is fine

    const outside = join(BASE, `outside-${randomUUID().slice(0, 8)}`);
    mkdirSync(join(outside, 'sub'), { recursive: true });
    const link = join(root, `link-${randomUUID().slice(0, 8)}`);
    symlinkSync(outside, link);
    await expectCode(executor.removeRunDir(join(link, 'sub')), 'OUTSIDE_RUNS_ROOT');
    expect(existsSync(join(outside, 'sub'))).toBe(true);
    await executor.removeRunDir(link);
    expect(() => lstatSync(link)).toThrow();
    expect(existsSync(join(outside, 'sub'))).toBe(true);

    for (const bad of [root, '/etc', join(root, '..'), `${root}x/1`, '/']) {
      const error = await executor.removeRunDir(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isExecutorError(error, 'OUTSIDE_RUNS_ROOT') || isExecutorError(error, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
    expect(existsSync(root)).toBe(true);
  });

  it('lists the run directories of a process directory, and nothing a local user left beside them', async () => {
    const dir = join(root, `process-${randomUUID().slice(0, 8)}`);
    expect(await executor.listRunDirs(dir)).toEqual([]); // missing
    const runs = ['run-1-7-0123456789ab-cafe0001', 'run-2-9-deadbeef'].map((name) => join(dir, name));
    for (const run of runs) mkdirSync(run, { recursive: true });
    writeFileSync(join(dir, 'run-3-10-file'), 'not a directory');
    mkdirSync(join(dir, 'run-4-11-$(touch pwned)'));
    mkdirSync(join(dir, 'notes'));
    symlinkSync(BASE, join(dir, 'run-5-12-link'));
    expect(await executor.listRunDirs(dir)).toEqual(runs);

    const linked = join(root, `process-link-${randomUUID().slice(0, 8)}`);
    symlinkSync(dir, linked);
    expect(await executor.listRunDirs(linked)).toEqual([]);
    for (const bad of [root, '/etc', join(root, '..'), `${root}x/1`]) {
      const error = await executor.listRunDirs(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isExecutorError(error, 'OUTSIDE_RUNS_ROOT') || isExecutorError(error, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });

  it('refuses a FIFO where it reads a file, at once, and reads only the first bytes of a huge pid or exit_code file', async () => {
    const dir = runDir();
    mkdirSync(dir, { recursive: true });
    const fifos = ['metrics.jsonl', 'stdout.log', 'pid', 'exit_code'].map((name) => join(dir, name));
    for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
    // A reader that waits on a FIFO (in open, or in read) is let go after 8 s, so a wrong
    // executor fails these assertions rather than hanging the test file.
    const rescuer = spawn(
      '/bin/sh',
      ['-c', 'sleep 8; for f in "$@"; do exec 3<>"$f"; exec 3>&-; done', 'rescuer', ...fifos],
      { stdio: 'ignore' },
    );
    try {
      const started = Date.now();
      const error = await expectCode(executor.readChunk(join(dir, 'metrics.jsonl'), 0, 1024), 'NOT_A_REGULAR_FILE');
      expect(error.message).toMatch(/metrics\.jsonl is a FIFO, not a regular file/);
      await expectCode(executor.tail(join(dir, 'stdout.log'), 1024), 'NOT_A_REGULAR_FILE');
      await expectCode(executor.readChunk(dir, 0, 1024), 'NOT_A_REGULAR_FILE');
      // The wrapper's own files: a FIFO there is as good as no file.
      expect(await executor.readHandle(dir)).toBeNull();
      const handle = { pid: process.pid, pgid: process.pid, startTime: '1', runDir: dir };
      expect(await executor.inspect(handle)).toEqual({ alive: false, exitCode: null });
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      rescuer.kill();
    }

    // 64 MiB of digits with no newline: only the first bytes are read, so the call is quick
    // (the shell's `read` went through them a byte at a time for minutes).
    const huge = join(runDir(), 'exit_code');
    mkdirSync(join(huge, '..'), { recursive: true });
    writeFileSync(huge, '7'.repeat(64 * 1024 * 1024));
    const started = Date.now();
    const state = await executor.inspect({
      pid: process.pid,
      pgid: process.pid,
      startTime: '1',
      runDir: join(huge, '..'),
    });
    expect(state.alive).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('probes disk and GPUs', async () => {
    const probe = await executor.probe();
    expect(probe.reachable).toBe(true);
    expect(probe.freeDiskBytes).toBeGreaterThan(0);
    expect(Array.isArray(probe.gpus)).toBe(true);
  });
});

describe('ssh executor connections', () => {
  it('removes a big run directory on its own time budget, not cut short by the command timeout', async () => {
    // 50 ms is far too short for removing 5 000 files; the removal has its own budget.
    const executor = new SshExecutor(sshOptions({ commandTimeoutMs: 50 }));
    try {
      const root = await executor.runsRoot();
      const dir = join(root, `big-${randomUUID().slice(0, 8)}`);
      for (let d = 0; d < 5; d++) {
        mkdirSync(join(dir, `d${d}`), { recursive: true });
        execFileSync('/bin/sh', ['-c', 'cd "$1" && seq -f f%g 1 1000 | xargs touch', 'make', join(dir, `d${d}`)]);
      }
      const started = Date.now();
      await executor.removeRunDir(dir);
      console.log(`removed 5 000 files over SSH in ${Date.now() - started} ms`);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await executor.close();
    }
  });

  it('fetches the host key fingerprint ssh-keygen prints', async () => {
    expect(await fetchHostKeyFingerprint(sshd.host, sshd.port)).toEqual({
      fingerprint: sshd.hostKeyFingerprint,
      keyType: 'ssh-ed25519',
    });
  });

  it('resolves the default runs root under the remote home', async () => {
    const { runsRoot: _, ...defaults } = sshOptions();
    const executor = new SshExecutor(defaults);
    try {
      expect(await executor.runsRoot()).toBe(join(sshd.home, '.trainyard', 'runs'));
    } finally {
      await executor.close();
    }
  });

  it('refuses a server whose host key differs from the pinned one, naming both', async () => {
    const pinned = 'SHA256:bsS+9vmqiKA4CR3Mh/ZLNj47/RnEX5mHwRmvYuNmiyk';
    const executor = new SshExecutor(sshOptions({ hostKeyFingerprint: pinned }));
    try {
      const error = await expectCode(executor.readHandle('/tmp/x'), 'HOST_KEY_MISMATCH');
      expect(error.message).toContain(pinned);
      expect(error.message).toContain(sshd.hostKeyFingerprint);
      expect(await executor.probe()).toMatchObject({ reachable: true, hostKeyMatches: false });
    } finally {
      await executor.close();
    }
  });

  it('refuses to connect with no pinned host key unless told to accept any', async () => {
    const { hostKeyFingerprint: _, ...unpinned } = sshOptions();
    const refusing = new SshExecutor(unpinned);
    const accepting = new SshExecutor({ ...unpinned, acceptAnyHostKey: true });
    try {
      await expectCode(refusing.readHandle('/tmp/x'), 'HOST_KEY_NOT_PINNED');
      expect((await accepting.probe()).reachable).toBe(true);
    } finally {
      await refusing.close();
      await accepting.close();
    }
  });

  it('fails fast and typed for a closed port and for a wrong key', async () => {
    const closed = new SshExecutor(sshOptions({ port: 1 }));
    const { privateKey: unknownKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    const other = new SshExecutor(sshOptions({ privateKey: unknownKey }));
    try {
      const started = Date.now();
      await expectCode(closed.inspect({ pid: 2, pgid: 2, startTime: '1', runDir: '/x' }), 'UNREACHABLE');
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await closed.probe()).toMatchObject({ reachable: false });
      await expectCode(other.readHandle('/tmp/x'), 'AUTH_FAILED');
    } finally {
      await closed.close();
      await other.close();
    }
  });

  it('serves 15 concurrent calls on one machine, opening a second connection', async () => {
    const executor = new SshExecutor(sshOptions());
    try {
      const handle = await executor.launch({
        runDir: join(await executor.runsRoot(), `run-${randomUUID()}`),
        command: 'sleep 30',
        env: PATH_ENV,
      });
      const states = await Promise.all(Array.from({ length: 15 }, () => executor.inspect(handle)));
      expect(states.every((s) => s.alive)).toBe(true);
      expect(executor.poolStats().connections).toBeGreaterThanOrEqual(2);
      await executor.stop(handle, 2000);
    } finally {
      await executor.close();
    }
  });

  it('gets by when sshd allows fewer sessions than assumed', async () => {
    const small = await startSshd({ maxSessions: 3 });
    const executor = new SshExecutor({
      ...sshOptions(),
      port: small.port,
      hostKeyFingerprint: small.hostKeyFingerprint,
      privateKey: small.privateKey,
    });
    try {
      const handle = await executor.launch({
        runDir: join(await executor.runsRoot(), `run-${randomUUID()}`),
        command: 'sleep 30',
        env: PATH_ENV,
      });
      const states = await Promise.all(Array.from({ length: 12 }, () => executor.inspect(handle)));
      expect(states.every((s) => s.alive)).toBe(true);
      await executor.stop(handle, 2000);
    } finally {
      await executor.close();
      await small.stop();
    }
  });

  it('reconnects after sshd restarts, and the trainer outlives the restart', async () => {
    const executor = new SshExecutor(sshOptions());
    try {
      const handle = await executor.launch({
        runDir: join(await executor.runsRoot(), `run-${randomUUID()}`),
        command: 'sleep 30',
        env: PATH_ENV,
      });
      await sshd.restart();
      expect(await executor.inspect(handle)).toEqual({ alive: true, exitCode: null });
      expect(await executor.tail(join(handle.runDir, 'stderr.log'), 100)).toBe('');
      await sshd.restart();
      expect(await executor.stop(handle, 2000)).toEqual({ killed: false });
    } finally {
      await executor.close();
    }
  });
});
