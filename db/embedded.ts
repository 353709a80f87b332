// The embedded database: PGlite in the data directory, served on a Unix socket so that
// every process (web, worker, CLI, a second worker) uses the one `postgres` driver path.
// PGlite has no authentication, so the socket lives in a directory only this user may
// enter (`<dataDir>/socket`, mode 0700): other accounts on the host cannot connect.
// PGlite admits one process per directory, so the process that opens it writes a lock
// file naming its pid and socket directory; the others connect there.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { tightenTree } from '../lib/private-dir.js';
import { PgliteServer } from './pglite-server.js';

export interface EmbeddedServer {
  url: string;
  stop(): Promise<void>;
}

export interface EmbeddedServerOptions {
  /** A connection holding the database in a transaction and silent this long is dropped (pglite-server.ts). */
  idleTimeoutMs?: number;
}

interface LockFile {
  pid: number;
  /** The directory holding the socket; null while the owner is still opening the database. */
  socketDir: string | null;
}

const lockPath = (dataDir: string) => path.join(dataDir, 'pglite.lock');
/** The name PostgreSQL clients look for in a socket directory (port 5432). */
const SOCKET_NAME = '.s.PGSQL.5432';
/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * Data directories this process holds, with their URL once listening. The lock file
 * names our pid for these, so without this a second open in the same process (a CLI
 * command in the test process, a worker next to the web server) would take our own
 * lock for a stale one and open a second PGlite on the same files.
 */
const heldHere = new Map<string, { url: string | null }>();
const keyOf = (dataDir: string) => path.resolve(dataDir);

/** A libpq-style socket URL (`?host=<dir>`); db/client.ts turns it into the driver's socket path. */
export function socketUrl(socketDir: string): string {
  const url = new URL('postgres://postgres@localhost/postgres');
  url.searchParams.set('host', socketDir);
  return url.toString();
}

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

function answers(socketDir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: path.join(socketDir, SOCKET_NAME) });
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
    // The owner is still opening the database: its socket comes once it listens.
    if (typeof lock.socketDir === 'string' && (await answers(lock.socketDir))) return socketUrl(lock.socketDir);
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function takeLock(dataDir: string): boolean {
  if (heldHere.has(keyOf(dataDir))) return false;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = lockPath(dataDir);
  const body = JSON.stringify({ pid: process.pid, socketDir: null } satisfies LockFile);
  try {
    fs.writeFileSync(file, body, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const lock = readLock(dataDir);
  if (lock && alive(lock.pid) && lock.pid !== process.pid) return false;
  // Stale lock from a process that died: replace it.
  fs.rmSync(file, { force: true });
  try {
    fs.writeFileSync(file, body, { flag: 'wx', mode: 0o600 });
    return true;
  } catch {
    return false;
  }
}

/**
 * A directory only this user may enter, for the socket: `<dataDir>/socket`, or a fresh
 * one under the system's temporary directory when that path is too long for a socket.
 */
function makeSocketDir(dataDir: string): { dir: string; temporary: boolean } {
  const inData = path.join(path.resolve(dataDir), 'socket');
  if (Buffer.byteLength(path.join(inData, SOCKET_NAME)) <= MAX_SOCKET_PATH) {
    fs.mkdirSync(inData, { recursive: true, mode: 0o700 });
    // mkdir keeps the mode of a directory that exists: one made by hand, or loosened since.
    const stat = fs.lstatSync(inData);
    if (!stat.isDirectory() || stat.uid !== process.getuid!())
      throw new Error(`${inData} is not a directory of this user; remove it.`);
    fs.chmodSync(inData, 0o700);
    return { dir: inData, temporary: false };
  }
  // mkdtemp creates it 0700 with a name nobody could have taken before.
  return { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-db-')), temporary: true };
}

/** Opens PGlite in `<dataDir>/pglite` and serves it on a Unix socket only this user can reach. */
export async function startEmbeddedServer(
  dataDir: string,
  options: EmbeddedServerOptions = {},
): Promise<EmbeddedServer> {
  if (!takeLock(dataDir)) {
    const holder = heldHere.has(keyOf(dataDir)) ? 'this process' : `process ${readLock(dataDir)?.pid ?? '?'}`;
    throw new Error(
      `The embedded database in ${dataDir} is held by ${holder} (see ${lockPath(dataDir)}); connect to it instead of opening it again.`,
    );
  }
  const held = { url: null as string | null };
  heldHere.set(keyOf(dataDir), held);
  let socket: { dir: string; temporary: boolean } | null = null;
  const removeSocket = () => {
    if (!socket) return;
    if (socket.temporary) fs.rmSync(socket.dir, { recursive: true, force: true });
    else fs.rmSync(path.join(socket.dir, SOCKET_NAME), { force: true });
  };
  try {
    socket = makeSocketDir(dataDir);
    const db = await PGlite.create({ dataDir: path.join(dataDir, 'pglite') });
    // PGlite lays out a new database from its bundled files with mode 0666, whatever the
    // umask (what the backend creates later honours it). The data is the owner's alone.
    tightenTree(path.join(dataDir, 'pglite'));
    const server = new PgliteServer(db, { idleTimeoutMs: options.idleTimeoutMs });
    await server.listen(path.join(socket.dir, SOCKET_NAME));
    fs.writeFileSync(
      lockPath(dataDir),
      JSON.stringify({ pid: process.pid, socketDir: socket.dir } satisfies LockFile),
      { mode: 0o600 },
    );
    held.url = socketUrl(socket.dir);
    return {
      url: held.url,
      async stop() {
        try {
          await server.close();
          await db.close();
        } finally {
          if (heldHere.get(keyOf(dataDir)) === held) heldHere.delete(keyOf(dataDir));
          removeSocket();
          const lock = readLock(dataDir);
          if (lock?.pid === process.pid) fs.rmSync(lockPath(dataDir), { force: true });
        }
      },
    };
  } catch (error) {
    heldHere.delete(keyOf(dataDir));
    removeSocket();
    fs.rmSync(lockPath(dataDir), { force: true });
    throw error;
  }
}
