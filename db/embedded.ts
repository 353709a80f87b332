// The embedded database: PGlite in the data directory, served over loopback so that
// every process (web, worker, CLI, a second worker) uses the one `postgres` driver path.
// PGlite admits one process per directory, so the process that opens it writes a lock
// file naming its pid and port; the others connect to that port.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PgliteServer } from './pglite-server.js';

export interface EmbeddedServer {
  url: string;
  stop(): Promise<void>;
}

interface LockFile {
  pid: number;
  port: number | null;
}

const lockPath = (dataDir: string) => path.join(dataDir, 'pglite.lock');

/**
 * Data directories this process holds, with their URL once listening. The lock file
 * names our pid for these, so without this a second open in the same process (a CLI
 * command in the test process, a worker next to the web server) would take our own
 * lock for a stale one and open a second PGlite on the same files.
 */
const heldHere = new Map<string, { url: string | null }>();
const keyOf = (dataDir: string) => path.resolve(dataDir);
const urlFor = (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(dataDir: string): LockFile | null {
  try {
    return JSON.parse(fs.readFileSync(lockPath(dataDir), 'utf8')) as LockFile;
  } catch {
    return null;
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** The URL of the embedded database served for `dataDir` (by any process, this one too), or null if none is. */
export async function findEmbeddedServer(dataDir: string, waitMs = 30_000): Promise<string | null> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const here = heldHere.get(keyOf(dataDir));
    if (here?.url) return here.url;
    const lock = readLock(dataDir);
    if (!lock || !alive(lock.pid)) return null;
    // Our own pid while we hold nothing here: a stale lock whose pid was reused.
    if (lock.pid === process.pid && !here) return null;
    // The owner is still opening the database: its port comes once it listens.
    if (lock.port !== null && (await answers(lock.port))) return urlFor(lock.port);
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function takeLock(dataDir: string): boolean {
  if (heldHere.has(keyOf(dataDir))) return false;
  fs.mkdirSync(dataDir, { recursive: true });
  const file = lockPath(dataDir);
  const body = JSON.stringify({ pid: process.pid, port: null } satisfies LockFile);
  try {
    fs.writeFileSync(file, body, { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const lock = readLock(dataDir);
  if (lock && alive(lock.pid) && lock.pid !== process.pid) return false;
  // Stale lock from a process that died: replace it.
  fs.rmSync(file, { force: true });
  try {
    fs.writeFileSync(file, body, { flag: 'wx' });
    return true;
  } catch {
    return false;
  }
}

/** Opens PGlite in `<dataDir>/pglite` and serves it on a free loopback port. */
export async function startEmbeddedServer(dataDir: string, options: { port?: number } = {}): Promise<EmbeddedServer> {
  if (!takeLock(dataDir)) {
    const holder = heldHere.has(keyOf(dataDir)) ? 'this process' : `process ${readLock(dataDir)?.pid ?? '?'}`;
    throw new Error(`The embedded database in ${dataDir} is held by ${holder} (see ${lockPath(dataDir)}); connect to it instead of opening it again.`);
  }
  const held = { url: null as string | null };
  heldHere.set(keyOf(dataDir), held);
  try {
    const db = await PGlite.create({ dataDir: path.join(dataDir, 'pglite') });
    const server = new PgliteServer(db);
    const port = await server.listen(options.port ?? 0, '127.0.0.1');
    fs.writeFileSync(lockPath(dataDir), JSON.stringify({ pid: process.pid, port } satisfies LockFile));
    held.url = urlFor(port);
    return {
      url: held.url,
      async stop() {
        try {
          await server.close();
          await db.close();
        } finally {
          if (heldHere.get(keyOf(dataDir)) === held) heldHere.delete(keyOf(dataDir));
          const lock = readLock(dataDir);
          if (lock?.pid === process.pid) fs.rmSync(lockPath(dataDir), { force: true });
        }
      },
    };
  } catch (error) {
    heldHere.delete(keyOf(dataDir));
    fs.rmSync(lockPath(dataDir), { force: true });
    throw error;
  }
}
