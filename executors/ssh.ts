// The `ssh` executor: trainers on a target machine reached with node-ssh.
// Operations run in persistent remote /bin/sh processes (ssh-shell.ts): the
// login shell only has to run `exec /bin/sh -c '<quoted program>'`, so it
// must be a POSIX-style shell (sh, bash, dash, ksh, zsh; not fish or csh).
// Files are read over the connection's SFTP session, byte for byte. The server's
// sftp-server answers one request at a time, so an open that waits (a FIFO without a
// writer) would stall every read on the machine: a file is stat'ed first and opened only
// when it is a regular file, and an open that still hangs (the file swapped in between)
// closes the session after OPEN_TIMEOUT_MS so the next read gets a fresh one.
//
// Host keys: with `hostKeyFingerprint` pinned, a server presenting any other
// key is refused before authentication (HOST_KEY_MISMATCH naming both
// fingerprints). With nothing pinned the executor refuses to connect at all
// (HOST_KEY_NOT_PINNED) unless `acceptAnyHostKey` is set, which only the
// fetch-and-confirm step of adding a machine should do.

import { NodeSSH } from 'node-ssh';
import {
  ShellExecutor,
  checkAbsolutePath,
  checkRange,
  checkRunsRoot,
  decodeTail,
  type ShellOptions,
  type ShellResult,
  type StopTiming,
} from './base.js';
import { fingerprintMatches, fingerprintOf, parseFingerprint } from './host-key.js';
import type { ShellOp } from './shell.js';
import { SshPool, type Ssh2Sftp } from './ssh-pool.js';
import { ExecutorError, isExecutorError, type ProbeResult } from './types.js';

export interface SshExecutorOptions extends StopTiming {
  host: string;
  port?: number;
  username: string;
  /** PEM (or OpenSSH) private key text. */
  privateKey: string;
  passphrase?: string;
  /** "SHA256:<base64 without padding>", as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint?: string;
  /** Connect without a pinned fingerprint; only for the fetch-and-confirm step. */
  acceptAnyHostKey?: boolean;
  /** Absolute, or under `~` (resolved against the remote $HOME on first use). Default `~/.trainyard/runs`. */
  runsRoot?: string;
  /** Default 15 s; three unanswered keepalives drop the connection. */
  keepaliveIntervalMs?: number;
  /** Default 10 s: TCP connect plus handshake and authentication. */
  readyTimeoutMs?: number;
  /** Channels per connection before another is opened (default 8, under sshd's MaxSessions 10). */
  channelsPerConnection?: number;
  maxConnections?: number;
  /** A request to the machine's shell taking longer fails (and its shell is closed). Default 60 s. */
  commandTimeoutMs?: number;
  /** Removing a run directory has its own budget: a big one takes long. Default 1 h. */
  removeTimeoutMs?: number;
  /** Starting a remote shell (the login shell's rc files included) taking longer fails. Default 20 s. */
  shellStartTimeoutMs?: number;
}

const SFTP_NO_SUCH_FILE = 2;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const OPEN_TIMEOUT_MS = 15_000;

export class SshExecutor extends ShellExecutor {
  readonly kind = 'ssh' as const;
  private readonly pool: SshPool;
  private readonly pinned: Buffer | null;
  private readonly target: string;
  private root?: Promise<string>;

  constructor(private readonly options: SshExecutorOptions) {
    super(options);
    if (!options.host || /[\s\0]/.test(options.host)) {
      throw new ExecutorError('INVALID_ARGUMENT', `invalid SSH host ${JSON.stringify(options.host)}`);
    }
    const port = options.port ?? 22;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ExecutorError('INVALID_ARGUMENT', `invalid SSH port ${String(options.port)}`);
    }
    this.target = `${options.username}@${options.host}:${port}`;
    this.pinned = options.hostKeyFingerprint ? parseFingerprint(options.hostKeyFingerprint) : null;
    this.pool = new SshPool({
      connect: () => this.connect(),
      ...(options.channelsPerConnection === undefined ? {} : { channelsPerConnection: options.channelsPerConnection }),
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      ...(options.shellStartTimeoutMs === undefined ? {} : { shellStartTimeoutMs: options.shellStartTimeoutMs }),
    });
  }

  /** Connections and channels in flight, for tests and diagnostics. */
  poolStats(): { connections: number; channels: number[] } {
    return this.pool.stats();
  }

  async runsRoot(): Promise<string> {
    this.root ??= this.resolveRunsRoot().catch((err: unknown) => {
      this.root = undefined;
      throw err;
    });
    return this.root;
  }

  private async resolveRunsRoot(): Promise<string> {
    const configured = this.options.runsRoot ?? '~/.trainyard/runs';
    if (configured === '~' || configured.startsWith('~/')) {
      const home = await this.homeDir();
      return checkRunsRoot(`${home === '/' ? '' : home}${configured.slice(1)}`.replace(/\/+$/, ''));
    }
    return checkRunsRoot(configured);
  }

  protected async runShell(op: ShellOp, args: readonly string[], options: ShellOptions = {}): Promise<ShellResult> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const lease = await this.pool.acquireShell();
        try {
          const timeoutMs = options.slow
            ? (this.options.removeTimeoutMs ?? 3_600_000)
            : (this.options.commandTimeoutMs ?? 60_000);
          return await lease.shell.run(op, args, timeoutMs);
        } finally {
          lease.release();
        }
      } catch (err) {
        // A connection found dead mid-call (sshd restarted, network cut) is replaced; safe programs get one more go.
        if (options.idempotent && attempt === 1 && isExecutorError(err, 'CONNECTION_LOST')) continue;
        throw err;
      }
    }
  }

  async readChunk(path: string, offset: number, maxBytes: number): Promise<Uint8Array> {
    checkAbsolutePath(path, 'the file');
    checkRange(offset, maxBytes);
    // Sized by the stat: a quiet file (most polls) costs one round trip and no open.
    return this.withFile(
      path,
      (sftp, size) => readRange(sftp, path, offset, Math.min(maxBytes, Math.max(0, size - offset))),
      () => new Uint8Array(0),
    );
  }

  async tail(path: string, maxBytes: number): Promise<string> {
    checkAbsolutePath(path, 'the file');
    checkRange(0, maxBytes);
    const bytes = await this.withFile(
      path,
      (sftp, size) => {
        const start = Math.max(0, size - maxBytes);
        return readRange(sftp, path, start, size - start);
      },
      () => new Uint8Array(0),
    );
    return decodeTail(bytes);
  }

  /** `fn` with the size of `path` once it is known to be a regular file; `missing()` when it does not exist. */
  private async withFile<T>(
    path: string,
    fn: (sftp: Ssh2Sftp, size: number) => Promise<T>,
    missing: () => T,
  ): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const sftp = await this.pool.sftp();
        const attrs = await new Promise<{ size: number; mode: number } | null>((resolve, reject) =>
          sftp.stat(path, (err, a) =>
            err ? (err.code === SFTP_NO_SUCH_FILE ? resolve(null) : reject(err)) : resolve(a),
          ),
        );
        if (!attrs) return missing();
        if ((attrs.mode & S_IFMT) !== S_IFREG) {
          throw new ExecutorError('NOT_A_REGULAR_FILE', `${path} is ${fileKind(attrs.mode)}, not a regular file`);
        }
        return await fn(sftp, attrs.size);
      } catch (err) {
        // SFTP status answers carry a numeric code; anything else is the session or connection going away.
        const lost =
          isExecutorError(err, 'CONNECTION_LOST') ||
          (!isExecutorError(err) && typeof (err as { code?: unknown }).code !== 'number');
        if (lost && attempt === 1) continue;
        if (isExecutorError(err)) throw err;
        const message = `reading ${path} over SFTP failed: ${(err as Error).message}`;
        throw new ExecutorError(lost ? 'CONNECTION_LOST' : 'COMMAND_FAILED', message, { cause: err });
      }
    }
  }

  async probe(): Promise<ProbeResult> {
    try {
      const result = await this.probeMachine();
      return this.pinned ? { ...result, hostKeyMatches: true } : result;
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (isExecutorError(err, 'HOST_KEY_MISMATCH')) return { reachable: true, hostKeyMatches: false, error };
      return { reachable: false, error };
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async connect(): Promise<NodeSSH> {
    const { options, pinned } = this;
    if (!pinned && !options.acceptAnyHostKey) {
      throw new ExecutorError(
        'HOST_KEY_NOT_PINNED',
        `no host key fingerprint is pinned for ${this.target}; fetch the server's fingerprint, confirm it and save it with the machine`,
      );
    }
    let presented: string | undefined;
    let mismatch = false;
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host: options.host,
        port: options.port ?? 22,
        username: options.username,
        privateKey: options.privateKey,
        ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
        readyTimeout: options.readyTimeoutMs ?? 10_000,
        keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          presented = fingerprintOf(key);
          mismatch = pinned !== null && !fingerprintMatches(key, pinned);
          return !mismatch;
        },
      });
      return ssh;
    } catch (err) {
      ssh.dispose();
      if (mismatch) {
        throw new ExecutorError(
          'HOST_KEY_MISMATCH',
          `host key mismatch for ${this.target}: pinned ${options.hostKeyFingerprint}, but the server presented ${presented}`,
          { cause: err },
        );
      }
      throw classifyConnectError(err, this.target);
    }
  }
}

function classifyConnectError(err: unknown, target: string): ExecutorError {
  const e = err as Error & { level?: string; code?: string };
  const message = e instanceof Error ? e.message : String(err);
  if (e?.level === 'client-authentication' || /authentication methods failed/i.test(message)) {
    return new ExecutorError('AUTH_FAILED', `authentication to ${target} failed: ${message}`, { cause: err });
  }
  if (/privateKey|private key|passphrase/i.test(message)) {
    return new ExecutorError('AUTH_FAILED', `the private key for ${target} cannot be used: ${message}`, { cause: err });
  }
  return new ExecutorError('UNREACHABLE', `cannot connect to ${target}: ${message}`, { cause: err });
}

function fileKind(mode: number): string {
  switch (mode & S_IFMT) {
    case 0o010000:
      return 'a FIFO';
    case 0o040000:
      return 'a directory';
    case 0o020000:
    case 0o060000:
      return 'a device';
    case 0o140000:
      return 'a socket';
    default:
      return 'something else';
  }
}

/** `length` bytes (fewer at the end of the file) from `offset` of a file just stat'ed as regular. */
async function readRange(sftp: Ssh2Sftp, path: string, offset: number, length: number): Promise<Uint8Array> {
  if (length === 0) return new Uint8Array(0);
  const handle = await new Promise<Buffer | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      // The open is stuck in sftp-server, and every request behind it with it.
      sftp.end();
      reject(
        new ExecutorError('COMMAND_FAILED', `opening ${path} over SFTP did not finish within ${OPEN_TIMEOUT_MS} ms`),
      );
    }, OPEN_TIMEOUT_MS);
    sftp.open(path, 'r', (err, h) => {
      clearTimeout(timer);
      if (!err) resolve(h);
      else if (err.code === SFTP_NO_SUCH_FILE) resolve(null);
      else reject(err);
    });
  });
  // Gone between the stat and the open: as if missing.
  if (!handle) return new Uint8Array(0);
  try {
    return await readFully(sftp, handle, offset, length);
  } finally {
    sftp.close(handle, () => {});
  }
}

async function readFully(sftp: Ssh2Sftp, handle: Buffer, offset: number, maxBytes: number): Promise<Uint8Array> {
  const buf = Buffer.alloc(maxBytes);
  let filled = 0;
  while (filled < maxBytes) {
    const n = await new Promise<number>((resolve, reject) =>
      sftp.read(handle, buf, filled, maxBytes - filled, offset + filled, (err, bytesRead) =>
        err ? reject(err) : resolve(bytesRead),
      ),
    );
    if (n === 0) break;
    filled += n;
  }
  return buf.subarray(0, filled);
}
