// SSH connections to one machine and the channels kept open on them: remote
// shells (one request at a time each) and one SFTP session. Calls share one
// connection; another is opened only when the channels of every open one
// near sshd's MaxSessions (10 by default; a server that refuses a channel
// earlier lowers that connection's limit). A connection that closes or errors
// is dropped at once, and the next call opens a fresh one.

import type { NodeSSH } from 'node-ssh';
import { RemoteShell } from './ssh-shell.js';
import { ExecutorError, connectionLost, isExecutorError } from './types.js';

/** The parts of ssh2's Client used here (node-ssh exposes it untyped). */
export interface Ssh2Client {
  exec(command: string, callback: (err: Error | undefined, channel: Ssh2Channel) => void): void;
  sftp(callback: (err: Error | undefined, sftp: Ssh2Sftp) => void): void;
  on(event: 'close' | 'end', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  setMaxListeners(n: number): this;
  end(): void;
}

export interface Ssh2Channel {
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  stderr: { on(event: 'data', listener: (chunk: Buffer) => void): unknown };
  write(data: string): boolean;
  close(): void;
}

export interface Ssh2Sftp {
  open(
    path: string,
    flags: string,
    callback: (err: (Error & { code?: number }) | undefined, handle: Buffer) => void,
  ): void;
  read(
    handle: Buffer,
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | undefined, bytesRead: number) => void,
  ): void;
  fstat(handle: Buffer, callback: (err: Error | undefined, attrs: { size: number }) => void): void;
  /** Follows symlinks, like stat(2); `mode` carries the file type bits. */
  stat(
    path: string,
    callback: (err: (Error & { code?: number }) | undefined, attrs: { size: number; mode: number }) => void,
  ): void;
  close(handle: Buffer, callback: (err: Error | undefined) => void): void;
  on(event: 'close', listener: () => void): this;
  end(): void;
}

export interface SshPoolOptions {
  /** Opens and authenticates a connection; its errors are already typed ExecutorErrors. */
  connect(): Promise<NodeSSH>;
  /** Channels open per connection (shells and the SFTP session); 8 leaves headroom under MaxSessions 10. */
  channelsPerConnection?: number;
  maxConnections?: number;
  /** How long a remote shell may take to start (login rc files included). */
  shellStartTimeoutMs?: number;
  /** Shells idle this long are closed (the first connection keeps one). */
  idleCloseMs?: number;
}

interface Connection {
  readonly ready: Promise<Ssh2Client>;
  client?: Ssh2Client;
  dead: boolean;
  /** Channels open or being opened. */
  channels: number;
  limit: number;
  shells: RemoteShell[];
  sftp?: Promise<Ssh2Sftp>;
}

export interface ShellLease {
  shell: RemoteShell;
  release(): void;
}

const CHANNEL_OPEN_FAILURE = '(SSH) Channel open failure';

export class SshPool {
  private readonly connections: Connection[] = [];
  private waiters: Array<() => void> = [];
  private closed = false;
  private readonly channelsPerConnection: number;
  private readonly maxConnections: number;
  private readonly shellStartTimeoutMs: number;
  private readonly idleCloseMs: number;

  constructor(private readonly options: SshPoolOptions) {
    this.channelsPerConnection = options.channelsPerConnection ?? 8;
    this.maxConnections = options.maxConnections ?? 4;
    this.shellStartTimeoutMs = options.shellStartTimeoutMs ?? 20_000;
    this.idleCloseMs = options.idleCloseMs ?? 30_000;
  }

  /** An idle remote shell, or a new one when all are busy; waits when every connection is full. */
  async acquireShell(): Promise<ShellLease> {
    for (let refused = 0; ;) {
      if (this.closed) throw new ExecutorError('CONNECTION_LOST', 'the executor is closed');
      const live = this.connections.filter((c) => !c.dead);
      for (const conn of live) {
        const shell = conn.shells.find((s) => !s.busy && !s.dead);
        if (shell) return this.lease(conn, shell);
      }
      const conn =
        live.find((c) => c.channels < c.limit) ?? (live.length < this.maxConnections ? this.open() : undefined);
      if (!conn) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        continue;
      }
      conn.channels += 1;
      let shell: RemoteShell;
      try {
        shell = await RemoteShell.open(await conn.ready, this.shellStartTimeoutMs);
      } catch (err) {
        conn.channels -= 1;
        this.wake();
        if (!conn.dead && isChannelRefused(err) && refused < 3) {
          // The server allows fewer sessions than assumed: remember it for this connection.
          refused += 1;
          conn.limit = Math.max(1, conn.channels);
          continue;
        }
        if (conn.dead) throw connectionLost(err);
        if (isExecutorError(err)) throw err;
        throw new ExecutorError('COMMAND_FAILED', `the machine refused a shell channel: ${(err as Error).message}`, {
          cause: err,
        });
      }
      conn.shells.push(shell);
      shell.onClose(() => {
        conn.shells = conn.shells.filter((s) => s !== shell);
        conn.channels -= 1;
        // A connection beyond the first is closed once its last channel is.
        if (conn.channels === 0 && this.connections[0] !== conn) this.drop(conn);
        this.wake();
      });
      if (conn.dead) shell.destroy();
      return this.lease(conn, shell);
    }
  }

  /** The SFTP session (one per connection, kept open; it multiplexes any number of requests). */
  async sftp(): Promise<Ssh2Sftp> {
    if (this.closed) throw new ExecutorError('CONNECTION_LOST', 'the executor is closed');
    const live = this.connections.filter((c) => !c.dead);
    const conn =
      live.find((c) => c.sftp !== undefined) ?? live.find((c) => c.channels < c.limit) ?? live[0] ?? this.open();
    if (!conn.sftp) {
      conn.channels += 1;
      const session = conn.ready.then(
        (client) =>
          new Promise<Ssh2Sftp>((resolve, reject) => {
            try {
              client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
            } catch (err) {
              reject(connectionLost(err));
            }
          }),
      );
      const forget = () => {
        if (conn.sftp !== session) return;
        conn.sftp = undefined;
        conn.channels -= 1;
        this.wake();
      };
      session.then((sftp) => sftp.on('close', forget), forget);
      conn.sftp = session;
    }
    try {
      return await conn.sftp;
    } catch (err) {
      throw conn.dead ? connectionLost(err) : err;
    }
  }

  /** Live connections and their open channels (for tests and diagnostics). */
  stats(): { connections: number; channels: number[] } {
    const live = this.connections.filter((c) => !c.dead);
    return { connections: live.length, channels: live.map((c) => c.channels) };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const conn of [...this.connections]) this.drop(conn);
    this.wake();
  }

  private lease(conn: Connection, shell: RemoteShell): ShellLease {
    shell.busy = true;
    shell.cancelIdle();
    let released = false;
    return {
      shell,
      release: () => {
        if (released) return;
        released = true;
        shell.busy = false;
        this.wake();
        if (!shell.dead) shell.closeWhenIdle(this.idleCloseMs, () => this.keepWhenIdle(conn, shell));
      },
    };
  }

  /** The first connection's first shell stays open; other idle shells and their connections go. */
  private keepWhenIdle(conn: Connection, shell: RemoteShell): boolean {
    return this.connections[0] === conn && conn.shells[0] === shell;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private open(): Connection {
    const conn: Connection = {
      dead: false,
      channels: 0,
      limit: this.channelsPerConnection,
      shells: [],
      ready: this.options.connect().then(
        (ssh) => {
          const client = ssh.connection as Ssh2Client | null;
          if (!client) throw new ExecutorError('CONNECTION_LOST', 'the SSH connection closed right after it opened');
          client.setMaxListeners(0);
          // Permanent listeners: an 'error' nobody listens to would crash the worker.
          client.on('error', () => this.drop(conn));
          client.on('close', () => this.drop(conn));
          client.on('end', () => this.drop(conn));
          conn.client = client;
          if (conn.dead) client.end();
          return client;
        },
        (err: unknown) => {
          this.drop(conn);
          throw err;
        },
      ),
    };
    conn.ready.catch(() => {});
    this.connections.push(conn);
    return conn;
  }

  private drop(conn: Connection): void {
    if (!conn.dead) {
      conn.dead = true;
      conn.client?.end();
      for (const shell of conn.shells) shell.destroy();
    }
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    this.wake();
  }
}

function isChannelRefused(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith(CHANNEL_OPEN_FAILURE);
}
