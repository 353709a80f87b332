// The process list, on the processes page and in the JSON API: newest first on the page,
// sorted by status, machine, progress or start time with keyset cursors that survive
// ties, filtered by status, searched by name (LIKE's own characters and hostile text
// taken literally), sized, and counted per status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machines, processes, runs } from '../../db/schema.js';
import { STATUSES, type ProcessStatus } from '../../domain/status.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { exampleTemplate, startStack, uid, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'list-admin');
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

type Json = Record<string, any>;

interface Seeded {
  id: number;
  status: ProcessStatus;
  machine: string;
  progress: number;
  started: number;
}

const HOSTILE = `50%_off'"<b>x</b>\\`;

/** A template with 14 processes straight in the database: two machines, ties on every sort key. */
async function seedList() {
  const db = stack.database.db;
  const template = await exampleTemplate(stack);
  const tag = uid();
  const [alpha, beta] = await db
    .insert(machines)
    .values([
      { name: `alpha-${tag}`, kind: 'ssh', address: '10.9.0.1:22', sshUser: 'train', slots: 1 },
      { name: `beta-${tag}`, kind: 'ssh', address: '10.9.0.2:22', sshUser: 'train', slots: 1 },
    ])
    .returning();
  const statuses: ProcessStatus[] = ['running', 'failed', 'running', 'created', 'stopped', 'running', 'failed'];
  const sameStart = new Date('2026-03-01T10:00:00.123Z');
  const seeded: Seeded[] = [];
  for (let i = 0; i < 14; i++) {
    const status = statuses[i % statuses.length]!;
    const machine = i % 3 === 0 ? beta! : alpha!;
    const name = i === 5 ? HOSTILE : i === 6 ? `500 off ${tag}` : i === 7 ? `50x_off ${tag}` : `run ${tag} ${i}`;
    const [row] = await db
      .insert(processes)
      .values({ templateId: template.id, machineId: machine.id, status, name })
      .returning();
    let progress = -1;
    let started = -Infinity;
    if (status !== 'created') {
      // Steps of 100 in four levels (ties), start times in three (one shared to the microsecond).
      const step = (i % 4) * 25;
      const startedAt = i % 3 === 0 ? sameStart : new Date(Date.UTC(2026, 2, 1, 9, i));
      await db.insert(runs).values({
        processId: row!.id,
        number: 1,
        templateSnapshot: {},
        machineId: machine.id,
        status: status === 'running' ? 'running' : 'stopped',
        step,
        totalSteps: 100,
        startedAt,
      });
      progress = step / 100;
      started = startedAt.getTime();
    }
    seeded.push({ id: row!.id, status, machine: machine.name, progress, started });
  }
  return { template, seeded, tag };
}

type Key = 'created' | 'status' | 'machine' | 'progress' | 'started';
const keyOf = (p: Seeded, sort: Key): number | string =>
  sort === 'created'
    ? p.id
    : sort === 'status'
      ? STATUSES.indexOf(p.status)
      : sort === 'machine'
        ? p.machine
        : sort === 'progress'
          ? p.progress
          : p.started;

function expected(seeded: Seeded[], sort: Key, order: 'asc' | 'desc'): number[] {
  const sign = order === 'asc' ? 1 : -1;
  return [...seeded]
    .sort((a, b) => {
      const [x, y] = [keyOf(a, sort), keyOf(b, sort)];
      const byKey = x < y ? -1 : x > y ? 1 : 0;
      return sign * (byKey !== 0 ? byKey : a.id - b.id);
    })
    .map((p) => p.id);
}

async function api(url: string): Promise<{ status: number; body: Json }> {
  const response = await viaToken(t.app, admin, { method: 'GET', url });
  return { status: response.statusCode, body: response.json<Json>() };
}

/** Every page of an API list, following nextCursor. */
async function allPages(url: string): Promise<{ ids: number[]; cursors: unknown[] }> {
  const ids: number[] = [];
  const cursors: unknown[] = [];
  let cursor: unknown = null;
  for (let page = 0; page < 50; page++) {
    const sep = url.includes('?') ? '&' : '?';
    const r = await api(`${url}${cursor === null ? '' : `${sep}cursor=${encodeURIComponent(String(cursor))}`}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    ids.push(...r.body.items.map((p: Json) => p.id as number));
    cursor = r.body.nextCursor;
    if (cursor === null) return { ids, cursors };
    cursors.push(cursor);
  }
  throw new Error('more than 50 pages');
}

const rowIds = (body: string) =>
  [...body.matchAll(/class="process-row[^"]*" data-id="(\d+)"/g)].map((m) => Number(m[1]));

describe('the process list in the JSON API', () => {
  it('keeps its old order and integer cursors without sort, and pages every sort both ways through ties', async () => {
    const { template, seeded } = await seedList();
    const base = `/api/v1/templates/${template.id}/processes?limit=3`;
    const plain = await allPages(base);
    expect(plain.ids).toEqual(seeded.map((p) => p.id));
    expect(plain.cursors.every((c) => typeof c === 'number')).toBe(true);
    for (const sort of ['created', 'status', 'machine', 'progress', 'started'] as const) {
      for (const order of ['asc', 'desc'] as const) {
        const listed = await allPages(`${base}&sort=${sort}&order=${order}`);
        expect(listed.ids, `${sort} ${order}`).toEqual(expected(seeded, sort, order));
        if (sort !== 'created') expect(listed.cursors.every((c) => typeof c === 'string')).toBe(true);
      }
    }
    // The same options over all processes, narrowed to the template.
    const global = await allPages(`/api/v1/processes?templateId=${template.id}&limit=4&sort=progress&order=desc`);
    expect(global.ids).toEqual(expected(seeded, 'progress', 'desc'));
  });

  it('filters by status, searches names literally, and refuses bad cursors, searches and sorts with 400', async () => {
    const { template, seeded, tag } = await seedList();
    const base = `/api/v1/templates/${template.id}/processes`;
    const running = await api(`${base}?status=running&sort=machine`);
    expect(running.body.items.map((p: Json) => p.id)).toEqual(
      expected(
        seeded.filter((p) => p.status === 'running'),
        'machine',
        'asc',
      ),
    );
    const names = async (q: string) =>
      (await api(`${base}?q=${encodeURIComponent(q)}`)).body.items.map((p: Json) => p.name as string);
    expect(await names('%_off')).toEqual([HOSTILE]);
    expect(await names('X_OFF')).toEqual([`50x_off ${tag}`]);
    expect(await names(`'"<b>`)).toEqual([HOSTILE]);
    expect(await names('\\')).toEqual([HOSTILE]);
    expect(await names(`500 OFF ${tag}`)).toEqual([`500 off ${tag}`]);
    expect(await names(`#${seeded[3]!.id}`)).toEqual([`run ${tag} 3`]);
    expect(await names('nothing like it')).toEqual([]);
    for (const bad of [
      `${base}?sort=status&cursor=12`,
      `${base}?sort=status&cursor=${Buffer.from('["x",1]').toString('base64url')}`,
      `${base}?sort=started&cursor=${Buffer.from(`["now'); drop table processes; --",1]`).toString('base64url')}`,
      `${base}?sort=machine&cursor=${Buffer.from('not json').toString('base64url')}`,
      `${base}?sort=name`,
      `${base}?order=sideways`,
      `${base}?q=${encodeURIComponent('a\u0000b')}`,
      `${base}?q=${'x'.repeat(201)}`,
      `${base}?cursor=-1`,
    ]) {
      const r = await api(bad);
      expect(r.status, bad).toBe(400);
      expect(r.body.error.code).toBeTypeOf('string');
      expect(r.body.error.message).toBeTypeOf('string');
    }
  });
});

describe('the processes page', () => {
  const page = (url: string) => viaSession(t.app, admin, { method: 'GET', url });

  it('lists newest first, counts per status, and sorts, filters, searches and sizes through links that keep the options', async () => {
    const { template, seeded } = await seedList();
    const base = `/training/templates/${template.id}/processes`;
    const first = await page(base);
    expect(first.statusCode).toBe(200);
    expect(rowIds(first.body)).toEqual(expected(seeded, 'created', 'desc'));
    const count = (body: string, key: string) =>
      Number(new RegExp(`data-count="${key}">[^<]*<b>(\\d+)</b>`).exec(body)?.[1] ?? NaN);
    expect(count(first.body, 'all')).toBe(14);
    expect(count(first.body, 'running')).toBe(seeded.filter((p) => p.status === 'running').length);
    expect(count(first.body, 'failed')).toBe(seeded.filter((p) => p.status === 'failed').length);
    expect(first.body).not.toContain('data-count="completed"');
    expect(first.body).toContain('Поиск по имени');
    expect(first.body).toContain('Время запуска');

    // 5 a page is no choice; 25 is. Sorted by progress, descending, 25 a page: one page.
    expect((await page(`${base}?size=5`)).statusCode).toBe(400);
    const sorted = await page(`${base}?sort=progress&order=asc&size=25`);
    expect(rowIds(sorted.body)).toEqual(expected(seeded, 'progress', 'asc'));
    expect(sorted.body).toMatch(/<option value="progress" selected>/);

    // The form's "all statuses" sends an empty status.
    expect(rowIds((await page(`${base}?status=&sort=started&order=desc&size=25`)).body)).toEqual(
      expected(seeded, 'started', 'desc'),
    );
    const failed = await page(`${base}?status=failed&sort=machine&order=desc`);
    expect(rowIds(failed.body)).toEqual(
      expected(
        seeded.filter((p) => p.status === 'failed'),
        'machine',
        'desc',
      ),
    );
    // The filter's counts chip is marked, and every chip keeps the sort.
    expect(failed.body).toMatch(/class="count current" href="[^"]*status=failed[^"]*"/);
    // (desc is the page's default order, so the links leave it out.)
    expect(failed.body).toContain(`href="${base}?sort=machine" data-count="all"`);

    // A hostile search stays text: in the field, escaped; matches the one name, literally.
    const hostile = await page(`${base}?q=${encodeURIComponent(HOSTILE)}`);
    expect(hostile.statusCode).toBe(200);
    expect(rowIds(hostile.body)).toEqual([seeded[5]!.id]);
    expect(hostile.body).not.toContain('<b>x</b>');
    expect(hostile.body).toContain('value="50%_off&#39;&quot;&lt;b&gt;x&lt;/b&gt;\\"');
    const none = await page(`${base}?q=${encodeURIComponent('%%__')}`);
    expect(rowIds(none.body)).toEqual([]);
    expect(none.body).toContain('Нет процессов, подходящих под поиск или фильтр.');
  });

  it('follows next links across pages without skipping or repeating a row on ties', async () => {
    const { template, seeded } = await seedList();
    const base = `/training/templates/${template.id}/processes`;
    // 25 a page is the least; add 26 more so machine sort spans two pages with ties across the edge.
    const db = stack.database.db;
    const [m] = await db.select().from(machines).limit(1);
    const extra = await db
      .insert(processes)
      .values(Array.from({ length: 26 }, () => ({ templateId: template.id, machineId: m!.id, status: 'created' })))
      .returning();
    const all = [
      ...seeded,
      ...extra.map((p) => ({
        id: p.id,
        status: 'created' as const,
        machine: m!.name,
        progress: -1,
        started: -Infinity,
      })),
    ];
    for (const sort of ['status', 'progress', 'created'] as const) {
      const seen: number[] = [];
      let url: string | null = `${base}?sort=${sort}&order=desc&size=25`;
      while (url) {
        const r = await page(url);
        expect(r.statusCode, url).toBe(200);
        seen.push(...rowIds(r.body));
        const next = /<a class="button" href="([^"]+)">Следующая страница<\/a>/.exec(r.body)?.[1];
        url = next ? next.replace(/&amp;/g, '&') : null;
      }
      expect(seen, sort).toEqual(expected(all, sort, 'desc'));
    }
  });
});
