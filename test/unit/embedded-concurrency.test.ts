// The embedded database under concurrent clients: several pools (as web, worker and CLI
// are) sending parameterised statements and transactions at once must each get their
// own answers — PGlite has one backend, so exchanges must not interleave.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../db/client.js';
import { startEmbeddedServer, type EmbeddedServer } from '../../db/embedded.js';

let server: EmbeddedServer;
const pools: Database[] = [];

beforeAll(async () => {
  server = await startEmbeddedServer(fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-embedded-')));
  for (let i = 0; i < 3; i++) pools.push(openDatabase(server.url, { max: 4, embedded: true }));
  await pools[0]!.sql`create table counters (name text primary key, n int not null)`;
});
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
      else if (i % 3 === 1) work.push(sql`select ${i}::int as a, ${'x' + i} as b, ${i * 2}::int as c`.then(([row]) => expect(row).toEqual({ a: i, b: 'x' + i, c: i * 2 })));
      else work.push(sql`select ${i}::int + ${1}::int + ${2}::int + ${3}::int + ${4}::int + ${5}::int + ${6}::int as s`.then(([row]) => expect(row!.s).toBe(i + 21)));
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
    const readers = Array.from({ length: 60 }, (_, i) => pools[(i + 1) % pools.length]!.sql`select ${i}::int as i`.then(([row]) => expect(row!.i).toBe(i)));
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
