// The embedded database under concurrent clients: several pools (as web, worker and CLI
// are) sending parameterised statements and transactions at once must each get their
// own answers — PGlite has one backend, so exchanges must not interleave — and one that
// holds the backend and goes quiet must not stall the others.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverTarget, openDatabase, type Database } from '../../db/client.js';
import { startEmbeddedServer, type EmbeddedServer } from '../../db/embedded.js';

let server: EmbeddedServer;
const pools: Database[] = [];

beforeAll(async () => {
  server = await startEmbeddedServer(fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-embedded-')));
  for (let i = 0; i < 3; i++) pools.push(openDatabase(server.url, { max: 4, embedded: true }));
  await pools[0]!.sql`create table counters (name text primary key, n int not null)`;
  // Opening PGlite takes seconds, tens of them on a loaded machine.
}, 120_000);
afterAll(async () => {
  for (const pool of pools) await pool.close();
  await server?.stop();
});

describe('the embedded database served to many connections', () => {
  it('answers interleaved parameterised statements of different shapes correctly', async () => {
    const work: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const sql = pools[i % pools.length]!.sql;
      if (i % 3 === 0) work.push(sql`select ${i}::int as a`.then(([row]) => expect(row!.a).toBe(i)));
      else if (i % 3 === 1)
        work.push(
          sql`select ${i}::int as a, ${'x' + i} as b, ${i * 2}::int as c`.then(([row]) =>
            expect(row).toEqual({ a: i, b: 'x' + i, c: i * 2 }),
          ),
        );
      else
        work.push(
          sql`select ${i}::int + ${1}::int + ${2}::int + ${3}::int + ${4}::int + ${5}::int + ${6}::int as s`.then(
            ([row]) => expect(row!.s).toBe(i + 21),
          ),
        );
    }
    await Promise.all(work);
  });

  it('keeps transactions whole while other connections keep asking', async () => {
    await pools[0]!.sql`insert into counters values ('c', 0)`;
    const increments = Array.from({ length: 40 }, (_, i) =>
      pools[i % pools.length]!.sql.begin(async (tx) => {
        const [row] = await tx`select n from counters where name = 'c' for update`;
        await tx`update counters set n = ${row!.n + 1} where name = 'c'`;
      }),
    );
    const readers = Array.from({ length: 60 }, (_, i) =>
      pools[(i + 1) % pools.length]!.sql`select ${i}::int as i`.then(([row]) => expect(row!.i).toBe(i)),
    );
    await Promise.all([...increments, ...readers]);
    const [row] = await pools[2]!.sql`select n from counters where name = 'c'`;
    expect(row!.n).toBe(40);
  });

  it('frees the backend when a client goes away in the middle of a transaction', async () => {
    const doomed = openDatabase(server.url, { max: 1, embedded: true });
    const reserved = await doomed.sql.reserve();
    await reserved`begin`;
    await reserved`insert into counters values ('doomed', 1)`;
    reserved.release();
    await doomed.sql.end({ timeout: 0 });
    const [row] = await pools[1]!.sql`select count(*)::int as n from counters where name = 'doomed'`;
    expect(row!.n).toBe(0);
  });
});

describe('a connection that holds the embedded database and goes quiet', () => {
  const IDLE_MS = 1000;
  let quietServer: EmbeddedServer;
  let others: Database;
  const opened: Database[] = [];
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    quietServer = await startEmbeddedServer(fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-embedded-')), {
      idleTimeoutMs: IDLE_MS,
    });
    others = openDatabase(quietServer.url, { max: 2, embedded: true });
    await others.sql`create table marks (name text primary key)`;
  }, 120_000);
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    for (const pool of opened) await pool.sql.end({ timeout: 0 });
    await others?.close();
    await quietServer?.stop();
  });

  /** The answer of `work`, or a failure naming what did not come within `ms` (never a hung test). */
  const within = <T>(what: string, ms: number, work: Promise<T>): Promise<T> =>
    Promise.race([
      work,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
    ]);

  it(
    'is dropped after the idle timeout with its transaction rolled back, and the others go on',
    { timeout: 60_000 },
    async () => {
      const quiet = openDatabase(quietServer.url, { max: 1, embedded: true });
      opened.push(quiet);
      const reserved = await quiet.sql.reserve();
      await reserved`begin`;
      await reserved`insert into marks values ('uncommitted')`;
      // …and nothing more: no commit, no rollback, the connection kept.

      const begun = Date.now();
      const [row] = await within('another connection', 20_000, others.sql`select count(*)::int as n from marks`);
      expect(row!.n).toBe(0);
      // It waited for the holder (first come, first served) until the holder was dropped.
      expect(Date.now() - begun).toBeGreaterThanOrEqual(IDLE_MS - 100);

      // The quiet one learns its connection is gone; what it wrote is not there.
      await expect(within('the dropped connection', 20_000, reserved`commit`)).rejects.toThrow();
      const [after] = await others.sql`select count(*)::int as n from marks where name = 'uncommitted'`;
      expect(after!.n).toBe(0);
    },
  );

  it(
    'drops a client that stops half-way through an extended-protocol exchange (Parse, no Sync)',
    { timeout: 60_000 },
    async () => {
      const target = driverTarget(quietServer.url);
      const url = new URL(target.url);
      const socket = net.connect(target.path ? { path: target.path } : { host: url.hostname, port: Number(url.port) });
      sockets.push(socket);
      let received = Buffer.alloc(0);
      socket.on('data', (data: Buffer) => (received = Buffer.concat([received, data])));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(startupMessage());
      // ReadyForQuery ends the startup.
      await within(
        'the startup',
        20_000,
        (async () => {
          while (!received.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) await new Promise((r) => setTimeout(r, 10));
        })(),
      );
      socket.write(parseMessage('select 1'));

      const [row] = await within('another connection', 20_000, others.sql`select 41 + 1 as n`);
      expect(row!.n).toBe(42);
      await within('the server to close the quiet client', 20_000, closed);
      // Told why, as PostgreSQL's idle_in_transaction_session_timeout would.
      expect(received.toString('latin1')).toContain('25P03');
    },
  );
});

const cstring = (text: string) => Buffer.from(`${text}\0`, 'utf8');

function startupMessage(): Buffer {
  const params = Buffer.concat([
    cstring('user'),
    cstring('postgres'),
    cstring('database'),
    cstring('postgres'),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(8);
  header.writeInt32BE(8 + params.length, 0);
  header.writeInt32BE(196608, 4);
  return Buffer.concat([header, params]);
}

function parseMessage(query: string): Buffer {
  // Unnamed statement, the query, no parameter types.
  const body = Buffer.concat([cstring(''), cstring(query), Buffer.from([0, 0])]);
  const header = Buffer.alloc(5);
  header[0] = 0x50; // P
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}
