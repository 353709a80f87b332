// A persistent /bin/sh on the target machine, fed requests over one SSH exec
// channel. sshd runs every exec through the user's login shell, and a login
// shell's rc files (conda or pyenv init are common on training machines) can
// cost hundreds of milliseconds; a persistent shell pays that once, and each
// request after it costs one round trip.
//
// Protocol: the client writes `<id> <n>\n` and then the request, n lines of
// quoted shell words naming one SHELL_LIBRARY function. The shell evals it in
// a subshell (stdin from /dev/null, so it can never read the request stream),
// then prints its stderr as `trainyard-stderr <line>` lines and
// `trainyard-end <id> <status>`. A request cut short by a lost connection is
// never evaluated.

import { SHELL_LIBRARY, type ShellResult } from './base.js';
import { commandLine, quote, type ShellOp } from './shell.js';
import type { Ssh2Channel, Ssh2Client } from './ssh-pool.js';
import { ExecutorError, connectionLost } from './types.js';

const SERVER_LOOP = `
trainyard_nl='
'
trainyard_err=$(mktemp) || exit 1
trap 'rm -f -- "$trainyard_err"' EXIT
printf 'trainyard-ready %s\\n' "$$"
while IFS=' ' read -r trainyard_id trainyard_n; do
  case $trainyard_n in ''|*[!0-9]*) exit 1 ;; esac
  trainyard_req=
  while [ "$trainyard_n" -gt 0 ]; do
    IFS= read -r trainyard_line || exit 0
    trainyard_req=$trainyard_req$trainyard_line$trainyard_nl
    trainyard_n=$((trainyard_n - 1))
  done
  ( eval "$trainyard_req" ) < /dev/null 2> "$trainyard_err"
  trainyard_status=$?
  while IFS= read -r trainyard_line || [ -n "$trainyard_line" ]; do
    printf 'trainyard-stderr %s\\n' "$trainyard_line"
  done < "$trainyard_err"
  printf '\\ntrainyard-end %s %s\\n' "$trainyard_id" "$trainyard_status"
done
`;

/** The exec request: the login shell only has to run /bin/sh with one quoted program. */
const SERVER_COMMAND = `exec /bin/sh -c ${quote(`${SHELL_LIBRARY}${SERVER_LOOP}`)} trainyard`;

interface Pending {
  id: number;
  stdout: string[];
  stderr: string[];
  resolve(result: ShellResult): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class RemoteShell {
  busy = false;
  dead = false;
  private buffered: Buffer = Buffer.alloc(0);
  private ready = false;
  private pending: Pending | undefined;
  private nextId = 1;
  private noise = '';
  private readonly closeListeners: Array<() => void> = [];
  private idleTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly channel: Ssh2Channel) {
    channel.on('data', (chunk) => this.onData(chunk));
    channel.stderr.on('data', (chunk) => {
      this.noise = (this.noise + chunk.toString('utf8')).slice(-2000);
    });
    channel.on('error', () => {});
    channel.on('close', () => this.closed());
  }

  /** Starts the shell and resolves once it is ready for requests. */
  static open(client: Ssh2Client, startTimeoutMs: number): Promise<RemoteShell> {
    return new Promise((resolve, reject) => {
      const onChannel = (err: Error | undefined, channel: Ssh2Channel) => {
        if (err) {
          // A refused channel (sshd's MaxSessions) keeps ssh2's message; anything else is the connection going.
          reject(err.message.startsWith('(SSH) Channel open failure') ? err : connectionLost(err));
          return;
        }
        const shell = new RemoteShell(channel);
        const timer = setTimeout(() => {
          shell.destroy();
          reject(
            new ExecutorError(
              'COMMAND_FAILED',
              `the remote shell did not start within ${startTimeoutMs} ms: ${shell.noise.trim()}`,
            ),
          );
        }, startTimeoutMs);
        shell.onReady = () => {
          clearTimeout(timer);
          resolve(shell);
        };
        shell.onClose(() => {
          clearTimeout(timer);
          reject(
            new ExecutorError(
              'COMMAND_FAILED',
              `the remote shell exited at start: ${shell.noise.trim() || 'no output'}`,
            ),
          );
        });
      };
      try {
        client.exec(SERVER_COMMAND, onChannel);
      } catch (err) {
        // ssh2 throws "Not connected" for a socket that has just closed.
        reject(connectionLost(err));
      }
    });
  }

  private onReady: () => void = () => {};

  onClose(listener: () => void): void {
    if (this.dead) listener();
    else this.closeListeners.push(listener);
  }

  /** Runs one library function; the caller (the pool) never overlaps two requests on one shell. */
  run(op: ShellOp, args: readonly string[], timeoutMs: number): Promise<ShellResult> {
    if (this.dead) return Promise.reject(new ExecutorError('CONNECTION_LOST', 'the remote shell has exited'));
    if (this.pending) return Promise.reject(new Error('RemoteShell.run called while a request is in flight'));
    const request = commandLine([op, ...args]);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.destroy();
        reject(new ExecutorError('COMMAND_FAILED', `${op} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = { id, stdout: [], stderr: [], resolve, reject, timer };
      this.channel.write(`${id} ${request.split('\n').length}\n${request}\n`);
    });
  }

  /** Closes the shell after `ms` without a request, unless `keep()` says it is the one to keep. */
  closeWhenIdle(ms: number, keep: () => boolean): void {
    this.cancelIdle();
    this.idleTimer = setTimeout(() => {
      if (!this.busy && !keep()) this.destroy();
    }, ms);
    this.idleTimer.unref();
  }

  cancelIdle(): void {
    clearTimeout(this.idleTimer);
  }

  destroy(): void {
    this.channel.close();
    this.closed();
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (let nl = this.buffered.indexOf(10); nl >= 0; nl = this.buffered.indexOf(10)) {
      const line = this.buffered.subarray(0, nl).toString('utf8');
      this.buffered = this.buffered.subarray(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (!this.ready) {
      // Whatever the login shell's rc files print comes before the ready line.
      if (line.startsWith('trainyard-ready ')) {
        this.ready = true;
        this.onReady();
      } else {
        this.noise = (this.noise + line + '\n').slice(-2000);
      }
      return;
    }
    const pending = this.pending;
    if (!pending) return;
    if (line.startsWith('trainyard-end ')) {
      const [id, status] = line.slice('trainyard-end '.length).split(' ');
      if (Number(id) !== pending.id) return;
      this.pending = undefined;
      clearTimeout(pending.timer);
      pending.resolve({ code: Number(status), stdout: pending.stdout.join('\n'), stderr: pending.stderr.join('\n') });
    } else if (line.startsWith('trainyard-stderr ')) {
      pending.stderr.push(line.slice('trainyard-stderr '.length));
    } else {
      pending.stdout.push(line);
    }
  }

  private closed(): void {
    if (this.dead) return;
    this.dead = true;
    this.cancelIdle();
    const pending = this.pending;
    this.pending = undefined;
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(
        new ExecutorError('CONNECTION_LOST', 'the remote shell or its connection closed during a request'),
      );
    }
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}
