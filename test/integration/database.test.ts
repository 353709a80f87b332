// The database both ways docs/design.md §7 allows: PostgreSQL (DATABASE_URL) and the embedded
// PGlite served on a Unix socket — migrations, the first-start seed, accounts and tokens.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../db/client.js';
import { connectDatabase, type Connected } from '../../db/connect.js';
import { findEmbeddedServer, startEmbeddedServer, type EmbeddedServer } from '../../db/embedded.js';
import { runMigrations } from '../../db/migrate.js';
import { apiTokens, machines, roles, templates, users } from '../../db/schema.js';
import { BUILTIN_ROLES } from '../../domain/permissions.js';
import { loadConfig, type Config } from '../../lib/config.js';
import {
  authenticate,
  createToken,
  createUser,
  permissionsOf,
  revokeToken,
  tokenUser,
} from '../../services/accounts.js';
import { ServiceError } from '../../services/errors.js';
import { DEMO_TEMPLATE_NAME, LOCAL_MACHINE_NAME, seed } from '../../services/seed.js';
import { databaseUrlFor } from '../support/global-setup.js';
import { listeningOf } from '../support/listening.js';
import { groupAlive, TSX, uid, waitFor } from '../support/stack.js';

const HOLD_EMBEDDED = path.resolve('test/integration/fixtures/hold-embedded.ts');
const runAs = promisify(execFile);

/**
 * A client with no credentials (plain node, run as another user): a StartupMessage for
 * postgres/postgres, then a query that writes. Prints the connect error and what came back.
 */
const INTRUDER = `
const net = require('node:net');
const cstr = (s) => Buffer.from(s + '\\0');
const params = Buffer.concat([cstr('user'), cstr('postgres'), cstr('database'), cstr('postgres'), Buffer.from([0])]);
const startup = Buffer.alloc(8); startup.writeInt32BE(8 + params.length, 0); startup.writeInt32BE(196608, 4);
const text = cstr('create table intruder (x int)');
const query = Buffer.alloc(5); query[0] = 0x51; query.writeInt32BE(4 + text.length, 1);
let reply = Buffer.alloc(0), error = null;
const done = () => { process.stdout.write(JSON.stringify({ error, reply: reply.toString('latin1') })); process.exit(0); };
const socket = net.connect(JSON.parse(process.argv[1]), () => socket.write(Buffer.concat([startup, params, query, text])));
socket.on('data', (d) => { reply = Buffer.concat([reply, d]); });
socket.on('error', (e) => { error = e.code || e.message; });
socket.on('close', done);
setTimeout(done, 5000);
`;

async function tableNames(database: Database): Promise<string[]> {
  const rows = await database.sql<{ name: string }[]>`
    select table_schema || '.' || table_name as name from information_schema.tables
    where table_schema in ('public', 'drizzle') order by 1`;
  return rows.map((r) => r.name);
}

async function appliedMigrations(database: Database): Promise<Array<{ hash: string }>> {
  return database.sql<{ hash: string }[]>`select hash from drizzle.__drizzle_migrations order by id`;
}

const journalEntries = (): number =>
  (JSON.parse(fs.readFileSync(path.resolve('db/migrations/meta/_journal.json'), 'utf8')) as { entries: unknown[] })
    .entries.length;

async function demoAndLocalCounts(database: Database): Promise<{ demo: number; local: number }> {
  const [demo] = await database.db
    .select({ n: sql<number>`count(*)::int` })
    .from(templates)
    .where(eq(templates.name, DEMO_TEMPLATE_NAME));
  const [local] = await database.db
    .select({ n: sql<number>`count(*)::int` })
    .from(machines)
    .where(eq(machines.name, LOCAL_MACHINE_NAME));
  return { demo: demo!.n, local: local!.n };
}

describe('PostgreSQL: a fresh database', () => {
  const name = `trainyard_dbtest_${crypto.randomBytes(4).toString('hex')}`;
  let admin: postgres.Sql;
  let database: Database;

  beforeAll(async () => {
    admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    database = openDatabase(databaseUrlFor(name, inject('adminDatabaseUrl')), { max: 4 });
  });
  afterAll(async () => {
    await database?.close();
    await admin?.unsafe(`drop database if exists ${name} with (force)`);
    await admin?.end();
  });

  it('gets every migration once, and migrating again changes nothing', async () => {
    await runMigrations(database);
    const tables = await tableNames(database);
    const applied = await appliedMigrations(database);
    expect(applied).toHaveLength(journalEntries());
    expect(tables).toEqual(
      expect.arrayContaining([
        'public.users',
        'public.roles',
        'public.machines',
        'public.templates',
        'public.processes',
        'public.runs',
      ]),
    );

    await runMigrations(database);
    expect(await tableNames(database)).toEqual(tables);
    expect(await appliedMigrations(database)).toEqual(applied);
  });

  it('lets two processes migrate at once without either failing', async () => {
    const other = openDatabase(database.url, { max: 2 });
    try {
      await Promise.all([runMigrations(database), runMigrations(other)]);
      expect(await appliedMigrations(database)).toHaveLength(journalEntries());
    } finally {
      await other.close();
    }
  });

  it('is seeded once: the admin with the given password, built-in roles, the local machine and the demo template', async () => {
    const password = `admin-${uid()}-pw`;
    const first = await seed(database.db, { adminPassword: password });
    expect(first.admin).toEqual({ login: 'admin', password, generated: false });
    expect(await authenticate(database.db, 'admin', password)).toMatchObject({ login: 'admin' });

    const second = await seed(database.db, { adminPassword: 'another-password' });
    expect(second.admin).toBeNull();
    expect(await authenticate(database.db, 'admin', password)).not.toBeNull();
    expect(await authenticate(database.db, 'admin', 'another-password')).toBeNull();

    const roleRows = await database.db.select().from(roles);
    const byName = Object.fromEntries(roleRows.map((r) => [r.name, [...r.permissions].sort()]));
    expect(byName).toEqual({
      viewer: [...BUILTIN_ROLES.viewer].sort(),
      operator: [...BUILTIN_ROLES.operator].sort(),
      admin: [...BUILTIN_ROLES.admin].sort(),
    });
    expect(roleRows.every((r) => r.builtin)).toBe(true);
    expect(await demoAndLocalCounts(database)).toEqual({ demo: 1, local: 1 });

    const [adminUser] = await database.db.select().from(users).where(eq(users.login, 'admin'));
    const granted = await permissionsOf(database.db, adminUser!.id);
    expect([...granted.global].sort()).toEqual([...BUILTIN_ROLES.admin].sort());
  });

  it('restores the built-in roles to their permissions on the next seed', async () => {
    await database.db
      .update(roles)
      .set({ permissions: ['templates.view'] })
      .where(eq(roles.name, 'operator'));
    expect((await seed(database.db, { adminPassword: null })).admin).toBeNull();
    const [operator] = await database.db.select().from(roles).where(eq(roles.name, 'operator'));
    expect([...operator!.permissions].sort()).toEqual([...BUILTIN_ROLES.operator].sort());
    expect(await demoAndLocalCounts(database)).toEqual({ demo: 1, local: 1 });
  });
});

describe('PostgreSQL: seeding with no admin password', () => {
  it('generates a password, says so, and the admin can log in with it', async () => {
    const name = `trainyard_dbtest_${crypto.randomBytes(4).toString('hex')}`;
    const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const database = openDatabase(databaseUrlFor(name, inject('adminDatabaseUrl')), { max: 2 });
    try {
      await runMigrations(database);
      const seeded = await seed(database.db, { adminPassword: null });
      expect(seeded.admin?.generated).toBe(true);
      expect(seeded.admin!.password.length).toBeGreaterThanOrEqual(12);
      expect(await authenticate(database.db, 'admin', seeded.admin!.password)).toMatchObject({ login: 'admin' });
    } finally {
      await database.close();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });
});

describe('PostgreSQL: accounts and tokens', () => {
  let database: Database;
  beforeAll(async () => {
    database = openDatabase(inject('databaseUrl'), { max: 4 });
    await seed(database.db, { adminPassword: 'admin-password-for-tests' });
  });
  afterAll(async () => {
    await database?.close();
  });

  it('authenticates a new user with the right password only, and an unknown login not at all', async () => {
    const login = `user-${uid()}`;
    await createUser(database.db, { login, password: 'right-password', role: 'viewer' });
    expect(await authenticate(database.db, login, 'right-password')).toEqual({
      id: expect.any(Number),
      login,
      locale: 'ru',
    });
    expect(await authenticate(database.db, login, 'wrong-password')).toBeNull();
    expect(await authenticate(database.db, `nobody-${uid()}`, 'right-password')).toBeNull();
  });

  it('stores no password in clear and refuses a second user with the same login', async () => {
    const login = `user-${uid()}`;
    await createUser(database.db, { login, password: 'plain-text-pw', role: 'operator' });
    const [row] = await database.db.select().from(users).where(eq(users.login, login));
    expect(row!.passwordHash).not.toContain('plain-text-pw');
    const error = await createUser(database.db, { login, password: 'plain-text-pw' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe('conflict');
  });

  it('refuses a too-short password, a bad login and an unknown role', async () => {
    await expect(createUser(database.db, { login: `user-${uid()}`, password: 'short' })).rejects.toMatchObject({
      code: 'invalid',
      field: 'password',
    });
    await expect(createUser(database.db, { login: 'has space', password: 'long-enough-pw' })).rejects.toMatchObject({
      code: 'invalid',
      field: 'login',
    });
    await expect(
      createUser(database.db, { login: `user-${uid()}`, password: 'long-enough-pw', role: `no-role-${uid()}` }),
    ).rejects.toMatchObject({ code: 'not_found' });
  });

  it('accepts a created token for its user and stores only its hash', async () => {
    const login = `user-${uid()}`;
    const user = await createUser(database.db, { login, password: 'token-owner-pw', role: 'operator' });
    const created = await createToken(database.db, login, { name: 'ci', expiresDays: 30 });
    expect(created.token).toMatch(/^ty_/);
    expect(await tokenUser(database.db, created.token)).toEqual({ id: user.id, login, locale: 'ru' });
    const [row] = await database.db.select().from(apiTokens).where(eq(apiTokens.id, created.id));
    expect(row!.tokenHash).toBe(crypto.createHash('sha256').update(created.token).digest('hex'));
    expect(row!.lastUsedAt).not.toBeNull();
    expect(await tokenUser(database.db, `${created.token}x`)).toBeNull();
  });

  it('refuses a revoked token', async () => {
    const login = `user-${uid()}`;
    await createUser(database.db, { login, password: 'token-owner-pw' });
    const created = await createToken(database.db, login);
    expect(await tokenUser(database.db, created.token)).not.toBeNull();
    await revokeToken(database.db, created.id);
    expect(await tokenUser(database.db, created.token)).toBeNull();
    await expect(revokeToken(database.db, created.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('refuses an expired token', async () => {
    const login = `user-${uid()}`;
    await createUser(database.db, { login, password: 'token-owner-pw' });
    const created = await createToken(database.db, login, { expiresDays: 1 });
    expect(await tokenUser(database.db, created.token)).not.toBeNull();
    await database.db
      .update(apiTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(apiTokens.id, created.id));
    expect(await tokenUser(database.db, created.token)).toBeNull();
  });

  it('refuses a token of a deactivated user', async () => {
    const login = `user-${uid()}`;
    await createUser(database.db, { login, password: 'token-owner-pw' });
    const created = await createToken(database.db, login);
    await database.db.update(users).set({ isActive: false }).where(eq(users.login, login));
    expect(await tokenUser(database.db, created.token)).toBeNull();
    expect(await authenticate(database.db, login, 'token-owner-pw')).toBeNull();
  });
});

describe('the embedded database (PGlite on a Unix socket)', () => {
  const cleanups: Array<() => unknown> = [];
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-embedded-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const track = <T extends EmbeddedServer | Connected>(value: T): T => {
    cleanups.push(() => ('served' in value ? value.close() : value.stop()));
    return value;
  };
  const configFor = (dataDir: string): Config => ({ ...loadConfig({}, dataDir), databaseUrl: null, dataDir });
  const lock = (dataDir: string) =>
    JSON.parse(fs.readFileSync(path.join(dataDir, 'pglite.lock'), 'utf8')) as { pid: number; socketDir: string | null };
  const socketDirOf = (url: string) => new URL(url).searchParams.get('host');

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  });

  it('is found by connectDatabase in the same process, which migrates and seeds it through the served URL', async () => {
    const dataDir = tempDir();
    const server = track(await startEmbeddedServer(dataDir));
    expect(lock(dataDir)).toEqual({ pid: process.pid, socketDir: path.join(dataDir, 'socket') });
    expect(socketDirOf(server.url)).toBe(path.join(dataDir, 'socket'));

    const connected = track(await connectDatabase(configFor(dataDir)));
    expect(connected.served).toBeNull();
    expect(connected.database.url).toBe(server.url);
    await runMigrations(connected.database);
    await runMigrations(connected.database);
    const seeded = await seed(connected.database.db, { adminPassword: 'embedded-admin-pw' });
    expect(seeded.admin?.login).toBe('admin');
    expect((await seed(connected.database.db, { adminPassword: null })).admin).toBeNull();
    expect(await demoAndLocalCounts(connected.database)).toEqual({ demo: 1, local: 1 });
    expect(await authenticate(connected.database.db, 'admin', 'embedded-admin-pw')).toMatchObject({ login: 'admin' });
    // Still the one server: the lock names the same socket.
    expect(lock(dataDir).socketDir).toBe(socketDirOf(server.url));
  });

  it('keeps its data across a stop and a restart of the server', async () => {
    const dataDir = tempDir();
    const login = `user-${uid()}`;
    {
      const server = await startEmbeddedServer(dataDir);
      const connected = await connectDatabase(configFor(dataDir));
      try {
        await runMigrations(connected.database);
        await seed(connected.database.db, { adminPassword: 'embedded-admin-pw' });
        await createUser(connected.database.db, { login, password: 'survives-restart' });
      } finally {
        await connected.close();
        await server.stop();
      }
      expect(fs.existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);
    }
    const server = track(await startEmbeddedServer(dataDir));
    const connected = track(await connectDatabase(configFor(dataDir)));
    expect(connected.database.url).toBe(server.url);
    await runMigrations(connected.database);
    expect((await seed(connected.database.db, { adminPassword: null })).admin).toBeNull();
    expect(await authenticate(connected.database.db, login, 'survives-restart')).toMatchObject({ login });
    expect(await demoAndLocalCounts(connected.database)).toEqual({ demo: 1, local: 1 });
  });

  it('is opened and served by connectDatabase itself when nobody serves it, and let go on close', async () => {
    const dataDir = tempDir();
    const connected = await connectDatabase(configFor(dataDir));
    let closed = false;
    cleanups.push(() => (closed ? undefined : connected.close()));
    expect(connected.served).not.toBeNull();
    expect(await findEmbeddedServer(dataDir, 0)).toBe(connected.served!.url);
    await runMigrations(connected.database);
    await connected.close();
    closed = true;
    expect(fs.existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);
    expect(await findEmbeddedServer(dataDir, 0)).toBeNull();
  });

  it('refuses a second startEmbeddedServer on the same directory in the same process, with a clear error', async () => {
    const dataDir = tempDir();
    const server = track(await startEmbeddedServer(dataDir));
    await expect(startEmbeddedServer(dataDir)).rejects.toThrow(/embedded database in .* is held by this process/);
    // The refusal did not disturb the first: its lock and its database are intact.
    expect(lock(dataDir).socketDir).toBe(socketDirOf(server.url));
    const database = openDatabase(server.url, { embedded: true, max: 1 });
    cleanups.push(() => database.close());
    expect(await database.sql`select 1 as one`).toEqual([{ one: 1 }]);
  });

  /** The role `npm start` plays: another process opens the database in `dataDir` and serves it. */
  const holdElsewhere = async (dataDir: string): Promise<{ child: ChildProcess; url: string }> => {
    // Its own process group: tsx runs the script in a child node process, which a
    // SIGKILL of tsx alone would leave behind.
    const child: ChildProcess = spawn(TSX, [HOLD_EMBEDDED, dataDir], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => {
      if (child.pid !== undefined && groupAlive(child.pid)) {
        process.kill(-child.pid, 'SIGKILL');
        await waitFor('the holder to be gone', async () => !groupAlive(child.pid!), 10_000);
      }
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const url = await waitFor(
      'the other process to serve the database',
      async () => /serving (\S+)/.exec(output)?.[1],
      60_000,
      100,
    );
    return { child, url };
  };

  it('refuses a second startEmbeddedServer while another process serves the directory, and connects to that one instead', async () => {
    const dataDir = tempDir();
    const { child, url } = await holdElsewhere(dataDir);

    await expect(startEmbeddedServer(dataDir)).rejects.toThrow(new RegExp(`is held by process ${lock(dataDir).pid}`));
    expect(lock(dataDir).pid).not.toBe(process.pid);
    expect(await findEmbeddedServer(dataDir, 5000)).toBe(url);
    const connected = track(await connectDatabase(configFor(dataDir)));
    expect(connected.served).toBeNull();
    expect(connected.database.url).toBe(url);
    await runMigrations(connected.database);
    expect((await seed(connected.database.db, { adminPassword: 'held-elsewhere-pw' })).admin?.login).toBe('admin');
    await connected.close();

    // The holder stops cleanly on SIGTERM and lets go of the lock.
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);
    await waitFor('every process of the holder to be gone', async () => !groupAlive(child.pid!), 5000);
  });

  it('replaces a stale lock file left by a process that died', async () => {
    const dataDir = tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']);
    expect(dead.pid).toBeGreaterThan(0);
    fs.writeFileSync(
      path.join(dataDir, 'pglite.lock'),
      JSON.stringify({ pid: dead.pid, socketDir: path.join(dataDir, 'socket') }),
    );
    expect(await findEmbeddedServer(dataDir, 0)).toBeNull();

    const server = track(await startEmbeddedServer(dataDir));
    expect(lock(dataDir)).toEqual({ pid: process.pid, socketDir: socketDirOf(server.url) });
    const connected = track(await connectDatabase(configFor(dataDir)));
    expect(connected.database.url).toBe(server.url);
  });

  it('replaces a stale lock file that names this process when this process holds nothing (a reused pid)', async () => {
    const dataDir = tempDir();
    fs.writeFileSync(path.join(dataDir, 'pglite.lock'), JSON.stringify({ pid: process.pid, socketDir: null }));
    expect(await findEmbeddedServer(dataDir, 0)).toBeNull();
    const server = track(await startEmbeddedServer(dataDir));
    expect(lock(dataDir).socketDir).toBe(socketDirOf(server.url));
  });
  it('admits no other local account: it listens on no TCP port, and another user cannot open the socket it listens on; the configured client can', async () => {
    const dataDir = tempDir();
    await holdElsewhere(dataDir);
    const holder = lock(dataDir).pid;
    const listening = listeningOf(holder);
    // Whatever the holder listens on, a client with no credentials tries to write through it.
    const targets = [
      ...listening.tcp.map(({ port }) => ({ host: '127.0.0.1', port })),
      ...listening.unix.map((socketPath) => ({ path: socketPath })),
    ];
    expect(targets.length).toBeGreaterThan(0);
    // Another account on the host: `nobody`, which root can become (CI runs as root).
    const asRoot = process.getuid!() === 0;
    if (asRoot) {
      for (const target of targets) {
        const { stdout } = await runAs(process.execPath, ['-e', INTRUDER, JSON.stringify(target)], {
          uid: 65534,
          gid: 65534,
          cwd: '/',
          timeout: 20_000,
        });
        const result = JSON.parse(stdout) as { error: string | null; reply: string };
        expect(result.reply, `${JSON.stringify(target)} answered another account`).not.toContain('CREATE TABLE');
        expect(result.error, JSON.stringify(target)).toBe('EACCES');
      }
    }
    expect(listening.tcp).toEqual([]);
    // The socket is in a directory only this user may enter.
    expect(listening.unix).toEqual([path.join(dataDir, 'socket', '.s.PGSQL.5432')]);
    const socketDir = fs.statSync(path.join(dataDir, 'socket'));
    expect(socketDir.mode & 0o777).toBe(0o700);
    expect(socketDir.uid).toBe(process.getuid!());

    // The configured path (the CLI's, a second worker's) reads and writes.
    const connected = track(await connectDatabase(configFor(dataDir)));
    await runMigrations(connected.database);
    expect((await seed(connected.database.db, { adminPassword: 'owner-only-pw' })).admin?.login).toBe('admin');
    const [intruder] = await connected.database.sql<
      { n: number }[]
    >`select count(*)::int as n from information_schema.tables where table_name = 'intruder'`;
    expect(intruder!.n).toBe(0);
  });
  it('serves a data directory whose path is too long for a socket from a private temporary directory, removed on stop', async () => {
    const dataDir = path.join(tempDir(), 'a-data-directory-whose-path-is-long-enough'.repeat(2));
    const server = await startEmbeddedServer(dataDir);
    let stopped = false;
    cleanups.push(() => (stopped ? undefined : server.stop()));
    const socketDir = socketDirOf(server.url)!;
    expect(path.dirname(socketDir)).toBe(os.tmpdir());
    expect(fs.statSync(socketDir).mode & 0o777).toBe(0o700);
    expect(lock(dataDir).socketDir).toBe(socketDir);
    const connected = track(await connectDatabase(configFor(dataDir)));
    expect(connected.database.url).toBe(server.url);
    expect(await connected.database.sql`select 1 as one`).toEqual([{ one: 1 }]);
    await connected.close();
    await server.stop();
    stopped = true;
    expect(fs.existsSync(socketDir)).toBe(false);
  });
});
