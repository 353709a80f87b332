// Logging in as an attacker would try it: a forged X-Forwarded-For neither dodges the
// login limiter nor lands in the audit log (unless TRUST_PROXY names the sender), a
// guesser spreading over many addresses is still stopped per account, a flood of
// logins never runs more than a few password hashes at once, and no `next` parameter
// sends the user off the site.
import { and, desc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents } from '../../db/schema.js';
import { hashGate } from '../../services/passwords.js';
import { makeActor, startApp, type Actor, type TestApp } from '../support/app.js';
import { startStack, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let plain: TestApp;
let proxied: TestApp;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  plain = await startApp(stack);
  // Behind one trusted proxy at 127.0.0.1 (inject's default remote address).
  proxied = await startApp(stack, { env: { TRUST_PROXY: '127.0.0.1' } });
});
afterAll(async () => {
  await plain?.close();
  await proxied?.close();
  await stack?.close();
});

function login(
  t: TestApp,
  actor: Pick<Actor, 'login'>,
  password: string,
  options: { remoteAddress?: string; headers?: Record<string, string>; next?: string } = {},
) {
  return t.app.inject({
    method: 'POST',
    url: '/login',
    payload: { login: actor.login, password, ...(options.next !== undefined ? { next: options.next } : {}) },
    ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
    headers: options.headers ?? {},
  });
}

async function loginAuditIps(actor: Actor): Promise<unknown[]> {
  const rows = await stack.database.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.action, 'login'), eq(auditEvents.actorLogin, actor.login)))
    .orderBy(desc(auditEvents.id));
  return rows.map((row) => (row.detail as { ip?: unknown }).ip);
}

describe('client addresses', () => {
  it('ignores X-Forwarded-For by default: the limiter counts the socket address, the audit log records it', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'xff-default');
    let status = 0;
    let tries = 0;
    // A fresh forged address each time: before, each looked like a new client.
    for (; tries < 12 && status !== 429; tries++) {
      status = (
        await login(plain, user, `wrong-${tries}`, {
          remoteAddress: '10.9.8.7',
          headers: { 'x-forwarded-for': `203.0.113.${tries + 1}` },
        })
      ).statusCode;
    }
    expect(status).toBe(429);
    expect(tries).toBe(11);
    // The 11th came from the same socket address: limited even with the right password.
    expect(
      (
        await login(plain, user, user.password, {
          remoteAddress: '10.9.8.7',
          headers: { 'x-forwarded-for': '198.51.100.1' },
        })
      ).statusCode,
    ).toBe(429);
    const ips = await waitFor(
      'the audit rows',
      async () => {
        const found = await loginAuditIps(user);
        return found.length >= 12 ? found : null;
      },
      10_000,
    );
    expect(new Set(ips)).toEqual(new Set(['10.9.8.7']));
  }, 120_000);

  it('believes X-Forwarded-For from the proxy TRUST_PROXY names, and only from it', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'xff-trusted');
    // From the trusted proxy: the client is the address it forwards.
    expect((await login(proxied, user, 'wrong', { headers: { 'x-forwarded-for': '198.51.100.77' } })).statusCode).toBe(
      401,
    );
    // From anyone else the header is the sender's own claim, not believed.
    expect(
      (
        await login(proxied, user, 'wrong', {
          remoteAddress: '10.1.2.3',
          headers: { 'x-forwarded-for': '198.51.100.88' },
        })
      ).statusCode,
    ).toBe(401);
    const ips = await waitFor(
      'the audit rows',
      async () => {
        const found = await loginAuditIps(user);
        return found.length >= 2 ? found : null;
      },
      10_000,
    );
    expect(new Set(ips)).toEqual(new Set(['198.51.100.77', '10.1.2.3']));
    // The proxy's Secure cookie decision follows the same trust.
    const secure = await login(proxied, user, user.password, { headers: { 'x-forwarded-proto': 'https' } });
    expect(secure.cookies.find((c) => c.name === 'ty_session')?.secure).toBe(true);
    const forged = await login(plain, user, user.password, { headers: { 'x-forwarded-proto': 'https' } });
    expect(forged.statusCode).toBe(303);
    expect(forged.cookies.find((c) => c.name === 'ty_session')?.secure).toBeFalsy();
  }, 60_000);
});

describe('guessing', () => {
  it('stops a guesser on one account however many addresses it spreads over', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'spread');
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) {
      statuses.push((await login(plain, user, `guess-${i}`, { remoteAddress: `192.0.2.${i + 1}` })).statusCode);
    }
    // Each address alone is far below its own limit; the account's limit is 20.
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(20)).toEqual([429, 429]);
    // Another account from those addresses is not held up.
    const other = await makeActor(stack, [{ role: 'viewer' }], 'spread-other');
    expect((await login(plain, other, other.password, { remoteAddress: '192.0.2.1' })).statusCode).toBe(303);
  }, 180_000);

  it('runs at most a few password hashes at once, whatever the number of logins in flight', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'flood');
    const limit = hashGate.limits.concurrent;
    hashGate.stats.peak = 0;
    let sampledMax = 0;
    const sampler = setInterval(() => (sampledMax = Math.max(sampledMax, hashGate.stats.active)), 5);
    const statuses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        login(plain, user, `flood-${i}`, { remoteAddress: `198.18.0.${i + 1}` }).then((r) => r.statusCode),
      ),
    );
    clearInterval(sampler);
    expect(statuses).toEqual(Array(8).fill(401));
    expect(limit).toBeLessThanOrEqual(4);
    expect(hashGate.stats.peak).toBe(limit);
    expect(sampledMax).toBeLessThanOrEqual(limit);
  }, 120_000);

  it('tells the excess of a flood to come back (503 with Retry-After) instead of queueing without end', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'overflow');
    const saved = { ...hashGate.limits };
    hashGate.limits = { concurrent: 1, queued: 1, maxWaitMs: 30_000 };
    try {
      const responses = await Promise.all(
        Array.from({ length: 4 }, (_, i) => login(plain, user, `over-${i}`, { remoteAddress: `198.19.0.${i + 1}` })),
      );
      const statuses = responses.map((r) => r.statusCode).sort();
      expect(statuses).toEqual([401, 401, 503, 503]);
      const busy = responses.find((r) => r.statusCode === 503)!;
      expect(busy.headers['retry-after']).toBe('5');
      expect(busy.body).toContain('Сейчас проверяется слишком много входов');
    } finally {
      hashGate.limits = saved;
    }
  }, 120_000);
});

describe('the next parameter', () => {
  const hostile = [
    '//evil.example',
    '///evil.example',
    '/\\evil.example',
    '/\\\\evil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    '/\r\n/evil.example',
    '/%09/evil.example',
    '/%0d%0a/evil.example',
    '/%0A/evil.example',
    '/%5C/evil.example',
    '/%5c%5cevil.example',
    '/\u0000/evil.example',
    'https://evil.example',
    'http:/evil.example',
    'javascript:alert(1)',
    ' /evil.example',
    'evil.example',
    '',
  ];

  it('sends each hostile next to / and keeps a same-origin path', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'next');
    const landing = async (next: string) => {
      const response = await plain.app.inject({
        method: 'GET',
        url: `/login?next=${encodeURIComponent(next)}`,
        cookies: { ty_session: user.cookie },
      });
      expect(response.statusCode, next).toBe(303);
      return response.headers.location;
    };
    for (const next of hostile) expect(await landing(next), JSON.stringify(next)).toBe('/');
    // As an attacker would link it, unencoded.
    const raw = await plain.app.inject({
      method: 'GET',
      url: '/login?next=/%09/evil.example',
      cookies: { ty_session: user.cookie },
    });
    expect(raw.headers.location).toBe('/');
    expect(await landing('/templates/3/processes?x=1')).toBe('/templates/3/processes?x=1');
    expect(await landing('/training/processes/5/monitoring?run=2#chart')).toBe(
      '/training/processes/5/monitoring?run=2#chart',
    );
    // The login form carries only a safe next.
    const form = await plain.app.inject({
      method: 'GET',
      url: `/login?next=${encodeURIComponent('/\t/evil.example')}`,
    });
    expect(form.body).toContain('name="next" value="/"');
    // And the form's POST checks it again.
    const posted = await login(plain, user, user.password, { next: '/%09/evil.example', remoteAddress: '10.77.0.1' });
    expect(posted.statusCode).toBe(303);
    expect(posted.headers.location).toBe('/');
    const good = await login(plain, user, user.password, {
      next: '/templates/3/processes?x=1',
      remoteAddress: '10.77.0.1',
    });
    expect(good.headers.location).toBe('/templates/3/processes?x=1');
  }, 60_000);
});
