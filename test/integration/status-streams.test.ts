// The live status stream of the processes page holds only as long as what let it open:
// logout, an expired session, a deactivated user or a revoked grant ends it within one
// keep-alive period (and no row is pushed past it); a session opens at most a few
// streams at once; a client that stops reading is dropped instead of buffered for.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processes, roleGrants, sessions, users } from '../../db/schema.js';
import { sha256 } from '../../services/passwords.js';
import { makeActor, startApp, type Actor, type TestApp } from '../support/app.js';
import { exampleTemplate, localMachine, startStack, waitFor, type Stack } from '../support/stack.js';

const KEEPALIVE_MS = 400;

let stack: Stack;
let t: TestApp;
let base: string;
let machineId: number;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  t = await startApp(stack, {
    app: {
      streams: {
        keepaliveMs: KEEPALIVE_MS,
        recheckMs: 100,
        perSession: 8,
        maxBufferedBytes: 256 * 1024,
        drainTimeoutMs: 1000,
      },
    },
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  machineId = (await localMachine(stack)).id;
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

async function processOf(templateId: number, values: Partial<typeof processes.$inferInsert> = {}) {
  const [row] = await stack.database.db
    .insert(processes)
    .values({ templateId, machineId, ...values })
    .returning();
  return row!;
}

interface Stream {
  status: number;
  /** Everything received so far. */
  text(): string;
  /** Resolves with the time the server ended the stream. */
  ended: Promise<number>;
  close(): void;
}

async function openStream(actor: Pick<Actor, 'cookie'>, templateId: number, origin = base): Promise<Stream> {
  const controller = new AbortController();
  const response = await fetch(`${origin}/training/templates/${templateId}/processes/events?after=0`, {
    headers: { cookie: `ty_session=${actor.cookie}` },
    signal: controller.signal,
  });
  let received = '';
  const ended = (async () => {
    if (!response.body) return Date.now();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) return Date.now();
        received += decoder.decode(chunk.value, { stream: true });
      }
    } catch {
      return Date.now();
    }
  })();
  return { status: response.status, text: () => received, ended, close: () => controller.abort() };
}

/** The stream ends by itself within `ms`; returns how long it took. */
async function endsWithin(stream: Stream, ms: number): Promise<number> {
  const from = Date.now();
  const at = await Promise.race([stream.ended, new Promise<null>((resolve) => setTimeout(() => resolve(null), ms))]);
  if (at === null) {
    stream.close();
    throw new Error(`the stream was still open after ${ms} ms; got ${stream.text().slice(0, 500)}`);
  }
  return at - from;
}

// One keep-alive period, plus room for a loaded 2-core machine.
const WITHIN = KEEPALIVE_MS + 2500;

describe('a live stream after its authority ends', () => {
  const ways: Array<[string, (actor: Actor, templateId: number) => Promise<void>]> = [
    [
      'logout',
      async (actor) => {
        const out = await t.app.inject({
          method: 'POST',
          url: '/logout',
          cookies: { ty_session: actor.cookie },
          headers: { 'x-csrf-token': actor.csrf },
        });
        expect(out.statusCode).toBe(303);
      },
    ],
    [
      'session expiry',
      async (actor) => {
        await stack.database.db
          .update(sessions)
          .set({ expiresAt: new Date(Date.now() - 1000) })
          .where(eq(sessions.id, sha256(actor.cookie)));
      },
    ],
    [
      'deactivation',
      async (actor) => {
        await stack.database.db.update(users).set({ isActive: false }).where(eq(users.id, actor.id));
      },
    ],
    [
      'a revoked grant',
      async (actor) => {
        await stack.database.db.delete(roleGrants).where(eq(roleGrants.userId, actor.id));
      },
    ],
  ];

  it.each(ways)(
    'ends the stream within one keep-alive period after %s',
    async (_name, revoke) => {
      const template = await exampleTemplate(stack);
      await processOf(template.id);
      const actor = await makeActor(stack, [{ role: 'viewer', templateId: template.id }], 'stream');
      const stream = await openStream(actor, template.id);
      expect(stream.status).toBe(200);
      await waitFor('the first block', async () => stream.text().includes('event: block'), 10_000);
      // Still open across keep-alives while the authority holds.
      const early = await Promise.race([
        stream.ended.then(() => 'ended'),
        new Promise((resolve) => setTimeout(() => resolve('open'), KEEPALIVE_MS * 2.5)),
      ]);
      expect(early).toBe('open');
      await revoke(actor, template.id);
      const took = await endsWithin(stream, WITHIN);
      expect(took).toBeLessThan(WITHIN);
      expect(stream.text()).toContain('event: bye');
      // The keep-alives that carried the checks went out meanwhile.
      expect(stream.text()).toContain(': keepalive');
    },
    60_000,
  );

  it('pushes no row to a viewer who lost the grant, even between keep-alives', async () => {
    // A keep-alive far away: only the check before pushing rows can catch it.
    const slow = await startApp(stack, { app: { streams: { keepaliveMs: 60_000, recheckMs: 0 } } });
    await slow.app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const template = await exampleTemplate(stack);
      const p = await processOf(template.id);
      const actor = await makeActor(stack, [{ role: 'viewer', templateId: template.id }], 'stream-row');
      const stream = await openStream(
        actor,
        template.id,
        `http://127.0.0.1:${(slow.app.server.address() as AddressInfo).port}`,
      );
      await waitFor('the first block', async () => stream.text().includes('event: block'), 10_000);
      await stack.database.db.delete(roleGrants).where(eq(roleGrants.userId, actor.id));
      await stack.database.db
        .update(processes)
        .set({ status: 'failed', lastError: 'secret-ish detail', statusVersion: 7 })
        .where(eq(processes.id, p.id));
      await endsWithin(stream, 5000);
      expect(stream.text()).not.toContain('event: row');
      expect(stream.text()).not.toContain('secret-ish detail');
    } finally {
      await slow.close();
    }
  }, 60_000);
});

describe('stream limits', () => {
  it('opens at most 8 streams per session; the 9th answers 429, another session is not held up', async () => {
    const template = await exampleTemplate(stack);
    const actor = await makeActor(stack, [{ role: 'viewer' }], 'cap');
    const streams: Stream[] = [];
    try {
      for (let i = 0; i < 8; i++) streams.push(await openStream(actor, template.id));
      expect(streams.map((s) => s.status)).toEqual(Array(8).fill(200));
      const ninth = await openStream(actor, template.id);
      streams.push(ninth);
      expect(ninth.status).toBe(429);
      const other = await makeActor(stack, [{ role: 'viewer' }], 'cap-other');
      const theirs = await openStream(other, template.id);
      streams.push(theirs);
      expect(theirs.status).toBe(200);
      // A closed stream frees its place.
      streams[0]!.close();
      await waitFor(
        'a free place',
        async () => (await openStream(actor, template.id).then((s) => (streams.push(s), s.status))) === 200,
        10_000,
        200,
      );
    } finally {
      for (const s of streams) s.close();
    }
  }, 60_000);

  it('drops a client that does not read instead of buffering for it', async () => {
    const template = await exampleTemplate(stack);
    // Big rows (the error is shown whole in the row's title), changing on every tick.
    for (let i = 0; i < 30; i++)
      await processOf(template.id, { status: 'failed', lastError: `boom ${i} ${'x'.repeat(20_000)}` });
    const actor = await makeActor(stack, [{ role: 'viewer' }], 'slow');
    // The server ends the streams earlier tests closed a little later: count from none.
    await waitFor('the streams of earlier tests to end', async () => t.app.statusFeed.size === 0, 10_000);
    const before = t.app.statusFeed.size;
    const url = new URL(base);
    const socket = net.connect({ host: url.hostname, port: Number(url.port) });
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause();
    socket.write(
      `GET /training/templates/${template.id}/processes/events?after=0 HTTP/1.1\r\nHost: ${url.host}\r\ncookie: ty_session=${actor.cookie}\r\n\r\n`,
    );
    await waitFor('the stream to open', async () => t.app.statusFeed.size === before + 1, 10_000);
    let bumping = true;
    const bump = (async () => {
      while (bumping) {
        await stack.database.db
          .update(processes)
          .set({ statusVersion: sql`${processes.statusVersion} + 1` })
          .where(eq(processes.templateId, template.id));
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();
    try {
      await waitFor('the non-reading client to be dropped', async () => t.app.statusFeed.size === before, 60_000, 100);
    } finally {
      bumping = false;
      await bump;
    }
    // Reading now finds the connection gone.
    socket.resume();
    await waitFor('the socket to close', async () => closed, 10_000);
    socket.destroy();
  }, 120_000);
});
