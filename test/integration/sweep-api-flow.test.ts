// Issue 12 end to end through the JSON API alone, as automation would drive it: a template
// with a restart policy and a stall timeout, a webhook channel and a subscription, a 3×2 grid
// sweep over two machines run by the example trainer. One grid point crashes once after a
// checkpoint and its restart resumes from it (TRAINYARD_PREVIOUS_RUN_DIR); another stops
// writing metrics while staying alive, is marked stalled, stopped and restarted. Every
// process ends completed, with its attempt; a loopback receiver gets every event, signed.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runs } from '../../db/schema.js';
import { makeActor, startApp, viaToken, type Actor, type TestApp } from '../support/app.js';
import { EXAMPLE_TRAINER, localMachine, startStack, TSX, uid, waitFor, type Stack } from '../support/stack.js';

type Json = Record<string, any>;

const SECRET = 'sweep-flow-secret-0123456789';
const STALL_SECONDS = 10;
/** Where the failing and the stalling point stop in their first run, with a checkpoint saved. */
const FIRST_LEG = 100;

interface Received {
  raw: string;
  signature: string | undefined;
}

let stack: Stack;
let t: TestApp;
let admin: Actor;
let localId: number;
let secondId: number;
let receiver: http.Server;
let hookUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'sweep-flow-admin');
  localId = (await localMachine(stack)).id;
  // A second machine with a slot for each of its three points, so none waits for another.
  secondId = (await localMachine(stack, 3)).id;
  receiver = http.createServer((request, response) => {
    let raw = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (raw += chunk));
    request.on('end', () => {
      const signature = request.headers['x-trainyard-signature'];
      received.push({ raw, signature: typeof signature === 'string' ? signature : undefined });
      response.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/trainyard`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
  await t?.close();
  await stack?.close();
});

async function call(method: 'GET' | 'POST', url: string, payload?: unknown) {
  const response = await viaToken(t.app, admin, {
    method,
    url,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: response.statusCode, body: response.body ? response.json<Json>() : {} };
}

/**
 * The example trainer, except at two grid points on their first run (no previous run dir):
 * lr 0.003 × batch 16 trains FIRST_LEG steps (saving its checkpoint) and then crashes;
 * lr 0.001 × batch 32 trains FIRST_LEG steps and then hangs without writing another line.
 * A param matches with the character after its value, so 0.001 is not taken for 0.0015.
 */
const COMMAND = `
has() { case "$TRAINYARD_PARAMS" in *"\\"$1\\":$2"[,}]*) return 0 ;; esac; return 1; }
if [ -z "$TRAINYARD_PREVIOUS_RUN_DIR" ]; then
  if has learning_rate 0.003 && has batch_size 16; then
    TRAINYARD_TOTAL_STEPS=${FIRST_LEG} '${TSX}' '${EXAMPLE_TRAINER}' || exit $?
    echo "crashed after step ${FIRST_LEG}" >&2
    exit 1
  fi
  if has learning_rate 0.001 && has batch_size 32; then
    TRAINYARD_TOTAL_STEPS=${FIRST_LEG} '${TSX}' '${EXAMPLE_TRAINER}' || exit $?
    echo "hanging after step ${FIRST_LEG}"
    exec sleep 300
  fi
fi
exec '${TSX}' '${EXAMPLE_TRAINER}'
`;

const sign = (raw: string) => `sha256=${crypto.createHmac('sha256', SECRET).update(raw).digest('hex')}`;

describe('a sweep with restarts, a stall and a webhook, through the JSON API', () => {
  it('ends with every grid point completed, the crashed and the stalled one resumed on attempt 2, every event signed', async () => {
    // The template: restarts failures (stalls too) at once, and calls 10 s without a metric line a stall.
    const template = await call('POST', '/api/v1/templates', {
      name: `sweep flow ${uid()}`,
      command: COMMAND,
      params: { learning_rate: 0.01, batch_size: 32, step_delay_ms: 0, log_every: 10, eval_every: 50 },
      totalSteps: 300,
      stopGraceSeconds: 5,
      restart: { onFailure: 1, backoffSeconds: 0, except: [] },
      stallSeconds: STALL_SECONDS,
    });
    expect(template.status, JSON.stringify(template.body)).toBe(201);
    expect(template.body).toMatchObject({
      restart: { onFailure: 1, backoffSeconds: 0, onMachineLost: false, except: [] },
      stallSeconds: STALL_SECONDS,
    });
    const templateId = template.body.id as number;

    const channel = await call('POST', '/api/v1/notification-channels', {
      name: `sweep flow hook ${uid()}`,
      kind: 'webhook',
      url: hookUrl,
      secret: SECRET,
    });
    expect(channel.status, JSON.stringify(channel.body)).toBe(201);
    const subscription = await call('POST', '/api/v1/subscriptions', {
      channelId: channel.body.id,
      templateId,
      events: ['failed', 'restarted', 'stalled', 'completed'],
    });
    expect(subscription.status, JSON.stringify(subscription.body)).toBe(201);

    const sweep = await call('POST', `/api/v1/templates/${templateId}/sweeps`, {
      machineIds: [localId, secondId],
      grid: { learning_rate: [0.01, 0.003, 0.001], batch_size: [16, 32] },
      start: true,
    });
    expect(sweep.status, JSON.stringify(sweep.body)).toBe(201);
    const made = sweep.body.processes as Json[];
    expect(made.map((p) => [p.params.learning_rate, p.params.batch_size, p.machineId])).toEqual([
      [0.01, 16, localId],
      [0.01, 32, secondId],
      [0.003, 16, localId],
      [0.003, 32, secondId],
      [0.001, 16, localId],
      [0.001, 32, secondId],
    ]);
    const ids = made.map((p) => p.id as number);
    const crashing = ids[2]!;
    const stalling = ids[5]!;

    // Every point ends completed, as the API shows it; the two that failed once on attempt 2.
    const final = new Map<number, Json>();
    await waitFor(
      'every process of the sweep to complete',
      async () => {
        for (const id of ids) {
          if (final.has(id)) continue;
          const { body } = await call('GET', `/api/v1/processes/${id}`);
          if (body.status === 'failed' && body.attempt >= body.maxAttempts)
            throw new Error(`process ${id} failed for good: ${body.lastError}`);
          if (body.status === 'completed') final.set(id, body);
        }
        return final.size === ids.length;
      },
      100_000,
      250,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; completed: ${[...final.keys()].join(', ')}`);
    });
    for (const id of ids) {
      const view = final.get(id)!;
      const again = id === crashing || id === stalling;
      expect(view, `process ${id}`).toMatchObject({
        status: 'completed',
        sweepId: sweep.body.id,
        attempt: again ? 2 : 1,
        maxAttempts: 2,
        runNumber: again ? 2 : 1,
        stalled: false,
        progress: { step: 300, totalSteps: 300 },
      });
    }

    // The crashed point: run 1 failed after its checkpoint, run 2 resumed from the failed run's directory.
    const crashRuns = (await call('GET', `/api/v1/processes/${crashing}/runs`)).body.items as Json[];
    const crashFirst = crashRuns.find((r) => r.number === 1)!;
    const crashSecond = crashRuns.find((r) => r.number === 2)!;
    expect(crashFirst).toMatchObject({
      status: 'failed',
      exitCode: 1,
      attempt: 1,
      failureClass: 'exit_code',
      step: FIRST_LEG,
    });
    expect(crashFirst.error).toContain(`crashed after step ${FIRST_LEG}`);
    expect(crashSecond).toMatchObject({ status: 'completed', attempt: 2, failureClass: null, step: 300 });
    await expectResumed(crashing);

    // The stalled point: run 1 wrote its last line at FIRST_LEG, stayed alive, was marked stalled and stopped.
    const stallRuns = (await call('GET', `/api/v1/processes/${stalling}/runs`)).body.items as Json[];
    const stallFirst = stallRuns.find((r) => r.number === 1)!;
    expect(stallFirst).toMatchObject({
      status: 'failed',
      attempt: 1,
      failureClass: 'stalled',
      stalled: true,
      step: FIRST_LEG,
    });
    expect(stallFirst.error).toBe(`Stalled: no metric line for ${STALL_SECONDS} s.`);
    expect(stallRuns.find((r) => r.number === 2)).toMatchObject({ status: 'completed', attempt: 2, stalled: false });
    const stallLog = await call('GET', `/api/v1/processes/${stalling}/logs?run=1`);
    expect(stallLog.body.stdout).toContain(`hanging after step ${FIRST_LEG}`);
    expect((stallLog.body.events as Json[]).map((e) => e.message)).toContain(
      `Run 1 stalled: no metric line for ${STALL_SECONDS} s; stopping it to restart.`,
    );
    await expectResumed(stalling);

    // The others ran once, from step 0.
    for (const id of ids.filter((id) => id !== crashing && id !== stalling)) {
      const only = (await call('GET', `/api/v1/processes/${id}/runs`)).body.items as Json[];
      expect(only.map((r) => [r.number, r.status, r.attempt])).toEqual([[1, 'completed', 1]]);
      expect(await firstStep(id, 1)).toBe(0);
    }

    // The sweep's table has a final and a best accuracy for every point.
    const table = await call('GET', `/api/v1/sweeps/${sweep.body.id}?metric=test_accuracy`);
    expect(table.status).toBe(200);
    for (const p of table.body.processes as Json[]) {
      expect(typeof p.final, `process ${p.id}`).toBe('number');
      expect(p.best).toBeGreaterThanOrEqual(p.final as number);
    }

    // The webhook: one event per completed run, failed + restarted for the crash, stalled + failed + restarted
    // for the stall, each signed over its raw body with the channel's secret.
    const expected = [
      ...ids.map((id) => `${id} completed`),
      `${crashing} failed`,
      `${crashing} restarted`,
      `${stalling} stalled`,
      `${stalling} failed`,
      `${stalling} restarted`,
    ].sort();
    const bodies = new Map<string, Json>();
    await waitFor(
      'every event at the receiver',
      async () => {
        for (const r of received) {
          expect(r.signature).toBe(sign(r.raw));
          const body = JSON.parse(r.raw) as Json;
          bodies.set(body.id as string, body);
        }
        return bodies.size >= expected.length;
      },
      20_000,
      100,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message}; received: ${[...bodies.values()].map((b) => `${b.process?.id} ${b.event}`).join(', ')}`,
      );
    });
    // A little longer: an unexpected event would arrive now, if one were coming.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const r of received) bodies.set((JSON.parse(r.raw) as Json).id as string, JSON.parse(r.raw) as Json);
    const events = [...bodies.values()];
    expect(events.map((b) => `${b.process.id} ${b.event}`).sort()).toEqual(expected);

    const find = (id: number, event: string) => events.find((b) => b.process.id === id && b.event === event)!;
    for (const body of events) {
      expect(body.process).toMatchObject({ templateId, name: final.get(body.process.id as number)!.name });
      expect(body.process.machineId).toBe(final.get(body.process.id as number)!.machineId);
      expect(Number.isNaN(Date.parse(body.at as string))).toBe(false);
    }
    for (const id of ids) {
      const again = id === crashing || id === stalling;
      expect(find(id, 'completed'), `process ${id}`).toMatchObject({
        process: { status: 'completed', attempt: again ? 2 : 1 },
        run: { number: again ? 2 : 1, exitCode: 0 },
      });
    }
    const crashed = find(crashing, 'failed');
    expect(crashed).toMatchObject({ process: { status: 'failed', attempt: 1 }, run: { number: 1, exitCode: 1 } });
    expect(crashed.process.lastError).toContain(`crashed after step ${FIRST_LEG}`);
    // A restart is about the run that failed: its number and attempt (the next run is attempt + 1).
    expect(find(crashing, 'restarted')).toMatchObject({ process: { attempt: 1 }, run: { number: 1 } });
    expect(find(stalling, 'stalled')).toMatchObject({ process: { attempt: 1 }, run: { number: 1 } });
    expect(find(stalling, 'failed')).toMatchObject({ process: { status: 'failed', attempt: 1 }, run: { number: 1 } });
    expect(find(stalling, 'failed').process.lastError).toBe(`Stalled: no metric line for ${STALL_SECONDS} s.`);
    expect(find(stalling, 'restarted')).toMatchObject({ process: { attempt: 1 }, run: { number: 1 } });

    // The channel's delivery log shows each event delivered.
    const log = await call('GET', `/api/v1/notification-channels/${channel.body.id}/deliveries?limit=500`);
    expect(new Set((log.body.items as Json[]).filter((d) => d.ok).map((d) => d.eventKey))).toEqual(
      new Set(bodies.keys()),
    );
  }, 150_000);
});

/** The first step a run's metrics show (its first test evaluation is at the step it starts from). */
async function firstStep(processId: number, run: number): Promise<number> {
  const metrics = await call('GET', `/api/v1/processes/${processId}/metrics?names=test_accuracy&run=${run}`);
  expect(metrics.status).toBe(200);
  const points = metrics.body.series.test_accuracy as [number, number][];
  expect(points.length, `process ${processId} run ${run}`).toBeGreaterThan(0);
  return points[0]![0];
}

/** Run 2 was given run 1's directory as TRAINYARD_PREVIOUS_RUN_DIR and went on from its checkpoint's step. */
async function expectResumed(processId: number): Promise<void> {
  const [first] = await stack.database.db
    .select({ runDir: runs.runDir })
    .from(runs)
    .where(and(eq(runs.processId, processId), eq(runs.number, 1)));
  expect(first?.runDir).toBeTruthy();
  const logs = await call('GET', `/api/v1/processes/${processId}/logs?run=2`);
  expect(logs.body.stdout).toContain(
    `resumed from ${path.join(first!.runDir!, 'checkpoint.json')} at step ${FIRST_LEG}`,
  );
  expect(await firstStep(processId, 1)).toBe(0);
  expect(await firstStep(processId, 2)).toBe(FIRST_LEG);
}
