// Notifications end to end: a real HTTP receiver on loopback that first refuses
// connections (not listening), then answers 500 three times, then 200. Processes that
// complete, fail and report a NaN loss on `local` all reach it, each event once by its
// idempotency key, every body signed with the channel's secret; the delivery log shows the
// refused and failed attempts. Then the JSON API: validation, secrets never returned, who
// may do what.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notificationChannels, runs } from '../../db/schema.js';
import { installationId } from '../../services/installation.js';
import { createNotifier } from '../../services/notifications.js';
import { act, createProcess } from '../../services/processes.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { localMachine, makeTemplate, startStack, uid, waitFor, waitForStatus, type Stack } from '../support/stack.js';

const SECRET = 'receiver-secret-0123456789';
const RETRY = { initialIntervalMs: 200, maximumIntervalMs: 1000 };

interface Received {
  path: string;
  raw: string;
  signature: string | undefined;
  at: number;
}

/** A receiver that answers `failFirst` requests with 500, then 200; it listens only once `listen()` is called. */
function receiver(port: number, failFirst: number) {
  const received: Received[] = [];
  let failures = 0;
  const server = http.createServer((request, response) => {
    let raw = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (raw += chunk));
    request.on('end', () => {
      if (failures < failFirst) {
        failures += 1;
        response.writeHead(500).end('receiver busy');
        return;
      }
      const signature = request.headers['x-trainyard-signature'];
      received.push({
        path: request.url ?? '',
        raw,
        signature: typeof signature === 'string' ? signature : undefined,
        at: Date.now(),
      });
      response.writeHead(200).end('ok');
    });
  });
  return {
    received,
    failures: () => failures,
    listen: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port nobody listens on (yet). */
async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const sign = (raw: string) => `sha256=${crypto.createHmac('sha256', SECRET).update(raw).digest('hex')}`;

interface Delivery {
  eventKey: string;
  event: string;
  attempt: number;
  httpStatus: number | null;
  ok: boolean;
  error: string | null;
}

let stack: Stack;
let t: TestApp;
let admin: Actor;
let operator: Actor;
let viewerElsewhere: Actor;
let hook: ReturnType<typeof receiver>;
let port: number;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  await stack.startWorker({ notifyRetry: RETRY });
  t = await startApp(stack, { env: { TRAINYARD_NOTIFY_RETRY_INITIAL_MS: '200' } });
  admin = await makeActor(stack, [{ role: 'admin' }], 'notify-admin');
  operator = await makeActor(stack, [{ role: 'operator' }], 'notify-operator');
  port = await freePort();
  hook = receiver(port, 3);
});
afterAll(async () => {
  await hook?.close().catch(() => undefined);
  await t?.close();
  await stack?.close();
});

const api = (options: Parameters<typeof viaToken>[2], actor: Actor | null = admin) => viaToken(t.app, actor, options);

async function addChannel(body: Record<string, unknown>): Promise<{ id: number }> {
  const response = await api({ method: 'POST', url: '/api/v1/notification-channels', payload: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number }>();
}

async function deliveries(channelId: number): Promise<Delivery[]> {
  const response = await api({ method: 'GET', url: `/api/v1/notification-channels/${channelId}/deliveries?limit=500` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<{ items: Delivery[] }>().items;
}

describe('durable delivery', () => {
  it('delivers every event once, signed, to a receiver that refused, then failed, then came back', async () => {
    const channel = await addChannel({
      name: `hook ${uid()}`,
      kind: 'webhook',
      url: `http://127.0.0.1:${port}/hook`,
      secret: SECRET,
    });
    const local = await localMachine(stack);
    const ok = await makeTemplate(stack, { command: 'echo done' });
    const bad = await makeTemplate(stack, { command: 'echo broken >&2; exit 3' });
    const nan = await makeTemplate(stack, {
      command: `printf '{"step":1,"loss":0.5}\\n{"step":2,"loss":NaN}\\n{"step":3,"loss":Infinity}\\n' >> "$TRAINYARD_METRICS_FILE"`,
    });
    // The operator subscribes per template; the admin to every template's failures: one delivery per channel still.
    for (const templateId of [ok.id, bad.id, nan.id]) {
      const response = await api(
        {
          method: 'POST',
          url: '/api/v1/subscriptions',
          payload: { channelId: channel.id, templateId, events: ['completed', 'failed', 'non_finite_loss'] },
        },
        operator,
      );
      expect(response.statusCode, response.body).toBe(201);
    }
    const everything = await api({
      method: 'POST',
      url: '/api/v1/subscriptions',
      payload: { channelId: channel.id, events: ['failed'] },
    });
    expect(everything.statusCode, everything.body).toBe(201);

    const ids: number[] = [];
    for (const template of [ok, ok, bad, ok, bad, nan]) {
      const view = await createProcess(stack.deps, { templateId: template.id, machineId: local.id });
      await act(stack.deps, view.id, 'start');
      ids.push(view.id);
    }
    for (const [i, id] of ids.entries())
      await waitForStatus(stack, id, [ok, ok, bad, ok, bad, nan][i] === bad ? 'failed' : 'completed');

    const installation = await installationId(stack.database.db);
    const runRows = await stack.database.db
      .select({ id: runs.id, processId: runs.processId, number: runs.number })
      .from(runs)
      .where(inArray(runs.processId, ids));
    expect(runRows).toHaveLength(ids.length);
    const expected = new Set<string>();
    for (const run of runRows) {
      const i = ids.indexOf(run.processId);
      const event = [ok, ok, bad, ok, bad, nan][i] === bad ? 'failed' : 'completed';
      expected.add(`${installation}-run-${run.id}-${event}`);
      if (i === 5) expected.add(`${installation}-run-${run.id}-non_finite_loss`);
    }
    expect(expected.size).toBe(7);

    // While nobody listens, every event is tried and refused.
    await waitFor(
      'every event to be refused at least once',
      async () => {
        const log = await deliveries(channel.id);
        const refused = new Set(log.filter((d) => !d.ok && d.httpStatus === null).map((d) => d.eventKey));
        return [...expected].every((key) => refused.has(key));
      },
      30_000,
      200,
    );
    expect(hook.received).toHaveLength(0);

    await hook.listen();
    await waitFor('every event to arrive', async () => hook.received.length >= expected.size, 60_000, 100);
    // A little longer: a duplicate would arrive now, if one were coming.
    await new Promise((resolve) => setTimeout(resolve, 1500));

    expect(hook.failures()).toBe(3);
    const bodies = hook.received.map((r) => {
      expect(r.path).toBe('/hook');
      expect(r.signature).toBe(sign(r.raw));
      return JSON.parse(r.raw) as {
        id: string;
        event: string;
        at: string;
        process: {
          id: number;
          name: string;
          templateId: number;
          machineId: number;
          status: string;
          attempt: number;
          lastError: string | null;
        };
        run: { number: number; exitCode: number | null } | null;
        metric?: { name: string; step: number; value: string };
      };
    });
    expect(new Set(bodies.map((b) => b.id))).toEqual(expected);
    expect(bodies).toHaveLength(expected.size);
    for (const body of bodies) {
      expect(ids).toContain(body.process.id);
      expect(body.process.machineId).toBe(local.id);
      expect(body.run?.number).toBe(1);
      if (body.event === 'failed') {
        expect(body.process).toMatchObject({ status: 'failed', templateId: bad.id, attempt: 1 });
        expect(body.run?.exitCode).toBe(3);
        expect(body.process.lastError).toContain('broken');
      } else if (body.event === 'completed') {
        expect(body.process.status).toBe('completed');
        expect(body.run?.exitCode).toBe(0);
      } else {
        expect(body.event).toBe('non_finite_loss');
        expect(body.metric).toEqual({ name: 'loss', step: 2, value: 'NaN' });
      }
    }

    // The log shows the refusals, the three 500s and one success per event.
    const log = await deliveries(channel.id);
    expect(log.filter((d) => d.httpStatus === 500)).toHaveLength(3);
    expect(log.find((d) => d.httpStatus === 500)?.error).toContain('receiver busy');
    expect(log.find((d) => d.httpStatus === null)?.error).toMatch(/ECONNREFUSED|refused/i);
    const succeeded = log.filter((d) => d.ok);
    expect(new Set(succeeded.map((d) => d.eventKey))).toEqual(expected);
    expect(succeeded).toHaveLength(expected.size);
    for (const d of succeeded) expect(d.attempt).toBeGreaterThan(1);

    // While the receiver is up, an event arrives within seconds of the status change (docs/design.md §8: ≤ 5 s).
    const late = await createProcess(stack.deps, { templateId: ok.id, machineId: local.id });
    await act(stack.deps, late.id, 'start');
    const done = await waitForStatus(stack, late.id, 'completed');
    const arrived = await waitFor(
      'the late event',
      async () => hook.received.find((r) => (JSON.parse(r.raw) as { process: { id: number } }).process.id === late.id),
      10_000,
      20,
    );
    expect(arrived.at - Date.parse(done.finishedAt!)).toBeLessThan(5000);
  });

  it('delivers an event announced twice once; stalled and restarted go the same way, and Slack gets text', async () => {
    const slackPort = await freePort();
    const slack = receiver(slackPort, 0);
    await slack.listen();
    try {
      const channel = await addChannel({
        name: `slack ${uid()}`,
        kind: 'slack',
        url: `http://127.0.0.1:${slackPort}/s`,
      });
      const template = await makeTemplate(stack, { command: 'true', name: `<b>tmpl</b> ${uid()}` });
      const response = await api({
        method: 'POST',
        url: '/api/v1/subscriptions',
        payload: { channelId: channel.id, templateId: template.id, events: ['stalled', 'restarted'] },
      });
      expect(response.statusCode, response.body).toBe(201);
      const process = await createProcess(stack.deps, {
        templateId: template.id,
        machineId: (await localMachine(stack)).id,
      });
      const notifier = createNotifier({ db: stack.database.db, client: stack.client, retry: RETRY });
      const stalled = { processId: process.id, runId: null, event: 'stalled' as const, key: `p${process.id}-1` };
      const first = await notifier.announceProcessEvent(stalled);
      const again = await notifier.announceProcessEvent(stalled);
      expect(first.started).toEqual([channel.id]);
      expect(again).toEqual({ key: first.key, started: [] });
      await notifier.announceProcessEvent({
        processId: process.id,
        runId: null,
        event: 'restarted',
        key: `p${process.id}-2`,
        attempt: 2,
      });
      // Not subscribed: nothing is sent.
      expect((await notifier.announceProcessEvent({ ...stalled, event: 'completed', key: 'x' })).started).toEqual([]);
      await waitFor('both messages', async () => slack.received.length >= 2, 20_000, 50);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(slack.received).toHaveLength(2);
      const texts = slack.received.map((r) => (JSON.parse(r.raw) as { text: string }).text).sort();
      expect(texts[0]).toContain('stalled');
      expect(texts[1]).toContain('was restarted');
      // The name is text, not Slack markup, and no signature is sent to Slack.
      expect(texts[0]).toContain('&lt;b&gt;tmpl&lt;/b&gt;');
      expect(slack.received[0]!.signature).toBeUndefined();
    } finally {
      await slack.close();
    }
  });

  it('sends a test event on request', async () => {
    const channel = await addChannel({
      name: `test ${uid()}`,
      kind: 'webhook',
      url: `http://127.0.0.1:${port}/test`,
      secret: SECRET,
    });
    const response = await api({ method: 'POST', url: `/api/v1/notification-channels/${channel.id}/test` });
    expect(response.statusCode, response.body).toBe(202);
    const { key } = response.json<{ key: string }>();
    const arrived = await waitFor(
      'the test event',
      async () => hook.received.find((r) => r.path === '/test'),
      20_000,
      50,
    );
    expect(JSON.parse(arrived.raw)).toMatchObject({ id: key, event: 'test', process: null, run: null });
    expect(arrived.signature).toBe(sign(arrived.raw));
  });
});

describe('the JSON API', () => {
  beforeAll(async () => {
    const other = await makeTemplate(stack, { command: 'true' });
    viewerElsewhere = await makeActor(stack, [{ role: 'viewer', templateId: other.id }], 'notify-scoped');
  });

  it('refuses bad channels with the field at fault, and never returns a secret', async () => {
    const url = 'http://127.0.0.1:9/x';
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: `n ${uid()}`, kind: 'webhook', url }, 'secret'],
      [{ name: `n ${uid()}`, kind: 'slack', url, secret: SECRET }, 'secret'],
      [{ name: `n ${uid()}`, kind: 'webhook', url: 'ftp://example.com/x', secret: SECRET }, 'url'],
      [{ name: `n ${uid()}`, kind: 'webhook', url: 'not a url', secret: SECRET }, 'url'],
      [{ name: `n ${uid()}`, kind: 'email', url, secret: SECRET }, 'kind'],
      [{ name: `n\u0000 ${uid()}`, kind: 'slack', url }, 'name'],
      [{ name: `n ${uid()}`, kind: 'webhook', url, secret: 'short' }, 'secret'],
    ];
    for (const [body, field] of cases) {
      const response = await api({ method: 'POST', url: '/api/v1/notification-channels', payload: body });
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      const error = response.json<{ error: { code: string; message: string; field?: string } }>().error;
      expect(error.code).toBe('invalid');
      expect(`${error.field ?? ''} ${error.message}`).toContain(field);
    }
    const name = `<script>alert(1)</script> ${uid()}`;
    const created = await addChannel({ name, kind: 'webhook', url, secret: SECRET });
    const duplicate = await api({
      method: 'POST',
      url: '/api/v1/notification-channels',
      payload: { name, kind: 'slack', url },
    });
    expect(duplicate.statusCode).toBe(409);
    const listed = await api({ method: 'GET', url: '/api/v1/notification-channels' });
    expect(listed.body).not.toContain(SECRET);
    expect(
      listed.json<{ items: Array<Record<string, unknown>> }>().items.find((c) => c.id === created.id),
    ).toMatchObject({
      name,
      kind: 'webhook',
      url,
      hasSecret: true,
    });
    const [row] = await stack.database.db
      .select()
      .from(notificationChannels)
      .where(eq(notificationChannels.id, created.id));
    expect(row!.secretEncrypted).not.toContain(SECRET);
    // An operator sees names and kinds to subscribe with, not URLs.
    const asOperator = await api({ method: 'GET', url: '/api/v1/notification-channels' }, operator);
    expect(asOperator.statusCode).toBe(200);
    expect(asOperator.json<{ items: Array<Record<string, unknown>> }>().items.find((c) => c.id === created.id)).toEqual(
      {
        id: created.id,
        name,
        kind: 'webhook',
      },
    );
  });

  it('lets only managers change channels, and each user manage their own subscriptions', async () => {
    const channel = await addChannel({ name: `perm ${uid()}`, kind: 'slack', url: 'http://127.0.0.1:9/s' });
    const byOperator = await api(
      {
        method: 'POST',
        url: '/api/v1/notification-channels',
        payload: { name: `x ${uid()}`, kind: 'slack', url: 'http://a.b/' },
      },
      operator,
    );
    expect(byOperator.statusCode).toBe(403);
    expect(
      (await api({ method: 'DELETE', url: `/api/v1/notification-channels/${channel.id}` }, operator)).statusCode,
    ).toBe(403);
    expect(
      (await api({ method: 'GET', url: `/api/v1/notification-channels/${channel.id}/deliveries` }, operator))
        .statusCode,
    ).toBe(403);
    expect((await api({ method: 'GET', url: '/api/v1/notification-channels/2147483647/deliveries' })).statusCode).toBe(
      404,
    );
    expect((await api({ method: 'GET', url: '/api/v1/subscriptions' }, null)).statusCode).toBe(401);

    const template = await makeTemplate(stack, { command: 'true' });
    // Every template needs notifications.manage; a template the caller cannot see reads as missing.
    const all = await api(
      { method: 'POST', url: '/api/v1/subscriptions', payload: { channelId: channel.id, events: ['failed'] } },
      operator,
    );
    expect(all.statusCode).toBe(403);
    const hidden = await api(
      {
        method: 'POST',
        url: '/api/v1/subscriptions',
        payload: { channelId: channel.id, templateId: template.id, events: ['failed'] },
      },
      viewerElsewhere,
    );
    expect(hidden.statusCode).toBe(404);
    const unknownEvent = await api(
      {
        method: 'POST',
        url: '/api/v1/subscriptions',
        payload: { channelId: channel.id, templateId: template.id, events: ['exploded'] },
      },
      operator,
    );
    expect(unknownEvent.statusCode).toBe(400);
    const noChannel = await api(
      {
        method: 'POST',
        url: '/api/v1/subscriptions',
        payload: { channelId: 2147483647, templateId: template.id, events: ['failed'] },
      },
      operator,
    );
    expect(noChannel.statusCode).toBe(400);

    const mine = await api(
      {
        method: 'POST',
        url: '/api/v1/subscriptions',
        payload: { channelId: channel.id, templateId: template.id, events: ['failed', 'completed'] },
      },
      operator,
    );
    expect(mine.statusCode, mine.body).toBe(201);
    const subscription = mine.json<{ id: number; templateName: string; channelName: string; events: string[] }>();
    expect(subscription).toMatchObject({
      templateName: template.name,
      channelName: expect.stringMatching(/^perm /),
      events: ['failed', 'completed'],
    });
    const operatorList = await api({ method: 'GET', url: '/api/v1/subscriptions' }, operator);
    expect(operatorList.json<{ items: Array<{ id: number }> }>().items.map((s) => s.id)).toContain(subscription.id);
    const othersList = await api({ method: 'GET', url: '/api/v1/subscriptions' }, viewerElsewhere);
    expect(othersList.json<{ items: Array<{ id: number }> }>().items.map((s) => s.id)).not.toContain(subscription.id);
    // Someone else's subscription reads as missing; the owner deletes it.
    expect(
      (await api({ method: 'DELETE', url: `/api/v1/subscriptions/${subscription.id}` }, viewerElsewhere)).statusCode,
    ).toBe(404);
    expect(
      (await api({ method: 'DELETE', url: `/api/v1/subscriptions/${subscription.id}` }, operator)).statusCode,
    ).toBe(204);
    expect(
      (await api({ method: 'DELETE', url: `/api/v1/subscriptions/${subscription.id}` }, operator)).statusCode,
    ).toBe(404);
    // Deleting a channel takes its subscriptions with it.
    expect((await api({ method: 'DELETE', url: `/api/v1/notification-channels/${channel.id}` })).statusCode).toBe(204);
    expect((await api({ method: 'DELETE', url: `/api/v1/notification-channels/${channel.id}` })).statusCode).toBe(404);
  });
});

describe('the pages', () => {
  const form = (fields: Record<string, string>) => ({
    payload: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });

  it('add a channel, list it escaped, and let a user subscribe and unsubscribe', async () => {
    const name = `<img src=x onerror=alert(1)> ${uid()}`;
    const added = await viaSession(t.app, admin, {
      method: 'POST',
      url: '/admin/notifications',
      ...form({ name, kind: 'webhook', url: 'http://127.0.0.1:9/p', secret: SECRET, _csrf: admin.csrf }),
    });
    expect(added.statusCode, added.body).toBe(303);
    const page = await viaSession(t.app, admin, { method: 'GET', url: '/admin/notifications?lang=en' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Notification channels');
    expect(page.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(page.body).not.toContain('<img src=x');
    expect(page.body).not.toContain(SECRET);
    const [channel] = await stack.database.db
      .select()
      .from(notificationChannels)
      .where(eq(notificationChannels.name, name));

    const template = await makeTemplate(stack, { command: 'true' });
    const mine = await viaSession(t.app, operator, { method: 'GET', url: '/account/notifications?lang=ru' });
    expect(mine.statusCode).toBe(200);
    expect(mine.body).toContain('Мои уведомления');
    expect(mine.body).toContain('&lt;img src=x');
    // An operator may not subscribe to every template: the option is not offered.
    expect(mine.body).not.toContain('Все шаблоны</option>');
    const subscribed = await viaSession(t.app, operator, {
      method: 'POST',
      url: '/account/notifications',
      ...form({ channelId: String(channel!.id), templateId: String(template.id), events: 'failed' }),
    });
    expect(subscribed.statusCode, subscribed.body).toBe(303);
    const listed = await api({ method: 'GET', url: '/api/v1/subscriptions' }, operator);
    const subscription = listed
      .json<{ items: Array<{ id: number; channelId: number; events: string[] }> }>()
      .items.find((s) => s.channelId === channel!.id);
    expect(subscription?.events).toEqual(['failed']);
    const gone = await viaSession(t.app, operator, {
      method: 'POST',
      url: `/account/notifications/${subscription!.id}/delete`,
      ...form({}),
    });
    expect(gone.statusCode).toBe(303);

    const log = await viaSession(t.app, admin, {
      method: 'GET',
      url: `/admin/notifications/${channel!.id}/deliveries?lang=en`,
    });
    expect(log.statusCode).toBe(200);
    expect(log.body).toContain('Nothing delivered yet.');
  });
});
