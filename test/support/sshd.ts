// A real OpenSSH server on a loopback port for tests: Debian's /usr/sbin/sshd
// with its own config, a generated ed25519 host key and one authorized client
// key, all in a temp dir, logging in as the current user. Sessions get a HOME of
// their own in that dir, so the account's shell start-up files (a ~/.bashrc that
// loads pyenv, say) neither slow nor hang the tests, and runs stay out of ~.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

export interface TestSshd {
  host: string;
  port: number;
  username: string;
  /** The HOME sessions get (a fresh directory, not the account's). */
  home: string;
  /** OpenSSH-format private key text of the authorized client key. */
  privateKey: string;
  /** "SHA256:…" of the server's host key, as ssh-keygen -lf prints it. */
  hostKeyFingerprint: string;
  /** Kills the server and every session it serves. */
  stop(): Promise<void>;
  /** Kills it with its sessions and starts it again on the same port with the same keys. */
  restart(): Promise<void>;
  /** Kills it with its sessions and leaves it down (keys kept) until `up()`. */
  down(): Promise<void>;
  /** Starts it again after `down()`, on the same port with the same keys. */
  up(): Promise<void>;
}

export async function startSshd(options: { maxSessions?: number } = {}): Promise<TestSshd> {
  if (!existsSync(SSHD)) {
    throw new Error(`${SSHD} is missing: the SSH tests need OpenSSH's server (apt-get install openssh-server)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'trainyard-sshd-'));
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'trainyard-test-host', '-f', join(dir, 'host_key')]);
  await run('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'trainyard-test-client',
    '-f',
    join(dir, 'client_key'),
  ]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client_key.pub')), { mode: 0o600 });
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'host_key.pub')]);
  const hostKeyFingerprint = /SHA256:[A-Za-z0-9+/]+/.exec(stdout)?.[0];
  if (!hostKeyFingerprint) throw new Error(`cannot read the host key fingerprint from: ${stdout}`);
  // Privilege separation needs this directory; it is missing where sshd never ran.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => {});
  const home = join(dir, 'home');
  await mkdir(home, { mode: 0o700 });

  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `MaxSessions ${options.maxSessions ?? 10}`,
      'MaxStartups 100',
      'Subsystem sftp internal-sftp',
      'PrintMotd no',
      // Set after the account's own HOME, so bash reads no ~/.bashrc of the real home.
      `SetEnv HOME=${home}`,
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );

  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    const proc = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4000);
    });
    child = proc;
    await waitForBanner(port, proc, () => log);
  };
  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc?.pid || proc.exitCode !== null) return;
    // Sessions run in processes sshd forked (each in its own session), so kill its whole tree.
    for (const pid of await descendants(proc.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };

  await start();
  return {
    host: '127.0.0.1',
    port,
    username: userInfo().username,
    home,
    privateKey: await readFile(join(dir, 'client_key'), 'utf8'),
    hostKeyFingerprint,
    stop: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
    restart: async () => {
      await stop();
      await start();
    },
    down: stop,
    up: start,
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once the server sends its SSH banner. */
async function waitForBanner(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`sshd exited with ${proc.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const done = (value: boolean) => {
        socket.destroy();
        resolve(value);
      };
      socket.setTimeout(1000, () => done(false));
      socket.once('data', (data) => done(data.toString('latin1').startsWith('SSH-')));
      socket.once('error', () => done(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`sshd did not accept connections on port ${port}: ${log()}`);
}

/** Every process below `root` in the parent tree, deepest last. */
async function descendants(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid)?.push(Number(entry));
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}
