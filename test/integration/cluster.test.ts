// Trainyard as production runs it: a full Temporal server (the release docker-compose.yml
// runs, on PostgreSQL, with its history shard count and dynamic config), two `trainyard web`
// and three `trainyard worker` processes (the real CLI), serving `local` and three SSH
// machines (loopback sshd instances). Processes are created and started through both web
// processes' JSON API; then workers are killed and restarted, the Temporal server is
// restarted, every PostgreSQL connection is cut, and a web process dies under open live
// streams. After each: every process completed, one run each, launched once, every metric
// point the trainer wrote stored once, and no trainer left running.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inArray, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import YAML from 'yaml';
import { openDatabase, type Database } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { machines, processes, runs, templates } from '../../db/schema.js';
import { encryptSecret } from '../../lib/keybox.js';
import { freePort } from '../../lib/temporal-dev-server.js';
import { ensureTemporalServer, TEMPORAL_SERVER_VERSION } from '../../lib/temporal-server.js';
import { createToken, createUser } from '../../services/accounts.js';
import { seed } from '../../services/seed.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { startTemporalServer, type RunningServer } from '../support/temporal-server.js';
import {
  EXAMPLE_TRAINER,
  groupAlive,
  storedPoints,
  TEST_SECRET,
  TSX,
  uid,
  waitFor,
  writtenPoints,
} from '../support/stack.js';

/** Trainers at once per machine: four machines take 24. */
const SLOTS = 6;

let dir: string;
let server: RunningServer | null = null;
let database: Database | null = null;
let admin: postgres.Sql | null = null;
let dropDatabase: (() => Promise<void>) | null = null;
let databaseName: string;
let databaseUrl: string;
const sshds: TestSshd[] = [];
let machineIds: number[] = [];
let token: string;
let launches: string;
const children = new Set<ChildProcess>();

/** The Temporal server as docker-compose.yml runs it: its image's release, shard count and dynamic config. */
function composeShape(): { version: string; shards: number; dynamicConfig: Record<string, unknown> } {
  const compose = YAML.parse(fs.readFileSync('docker-compose.yml', 'utf8')) as {
    services: { temporal: { image: string; environment: Record<string, string> } };
  };
  const temporal = compose.services.temporal;
  const dynamic = YAML.parse(fs.readFileSync('docker/temporal/dynamicconfig.yaml', 'utf8')) as Record<
    string,
    Array<{ value: unknown }>
  >;
  return {
    version: `v${temporal.image.split(':')[1]}`,
    shards: Number(temporal.environment.NUM_HISTORY_SHARDS),
    dynamicConfig: Object.fromEntries(Object.entries(dynamic).map(([key, [first]]) => [key, first!.value])),
  };
}

/**
 * One `trainyard web` or `trainyard worker`, restartable with the same settings. Like the
 * compose file's `restart: unless-stopped`, one that exits unasked is started again, and
 * the exit is noted in `crashes`.
 */
class Member {
  child: ChildProcess | null = null;
  output = '';
  readonly crashes: string[] = [];
  /** Set while it is being stopped on purpose. */
  stopping = false;
  constructor(
    readonly name: string,
    readonly command: 'web' | 'worker',
    readonly env: Record<string, string>,
  ) {}

  async start(): Promise<void> {
    this.stopping = false;
    this.output = '';
    const child = spawn(TSX, ['bin/trainyard.ts', this.command], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: databaseUrl,
        TEMPORAL_ADDRESS: server!.address,
        TRAINYARD_SECRET: TEST_SECRET,
        TRAINYARD_DATA_DIR: path.join(dir, 'data', this.name),
        LOG_LEVEL: 'warn',
        ...this.env,
      },
    });
    this.child = child;
    children.add(child);
    child.stdout.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-20_000)));
    child.stderr.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-20_000)));
    child.once('exit', (code, signal) => {
      if (this.stopping || this.child !== child) return;
      this.crashes.push(`${this.name} exited ${code ?? signal}: ${this.output.slice(-1500)}`);
      setTimeout(() => void this.start().catch((error: Error) => this.crashes.push(error.message)), 1000);
    });
    const ready = this.command === 'web' ? 'Trainyard web: ' : 'Trainyard worker: polling';
    await waitFor(
      `${this.name} to start`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${this.name} exited ${child.exitCode ?? child.signalCode}: ${this.output}`);
        return this.output.includes(ready);
      },
      90_000,
      100,
    );
  }

  /** Sends `signal` to its process group and waits for it to exit. */
  async kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(-child.pid!, signal);
    await exited;
  }
}

let webs: Member[] = [];
let workers: Member[] = [];

const origin = (web: Member) => `http://127.0.0.1:${web.env.PORT}`;

async function api<T>(web: Member, method: string, url: string, body?: unknown): Promise<T> {
  const response = await fetch(`${origin(web)}/api/v1${url}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url} on ${web.name}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-cluster-'));
  launches = path.join(dir, 'launches');
  fs.writeFileSync(launches, '');
  const shape = composeShape();
  expect(shape.version).toBe(TEMPORAL_SERVER_VERSION);
  expect(shape.shards).toBeGreaterThanOrEqual(4);
  // Built once per machine (.ci/run does it before the tests); minutes the first time.
  const found = await ensureTemporalServer({ log: (line) => console.log(`[temporal-server] ${line}`) });
  server = await startTemporalServer({
    found,
    adminDatabaseUrl: inject('adminDatabaseUrl'),
    numHistoryShards: shape.shards,
    stateDir: path.join(dir, 'server'),
    // The namespace created at start is served within a second.
    dynamicConfig: { ...shape.dynamicConfig, 'system.namespaceCacheRefreshInterval': '1s' },
  });

  databaseName = `trainyard_cluster_${uid()}`;
  admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${databaseName}`);
  dropDatabase = async () => {
    await admin!.unsafe(`drop database if exists ${databaseName} with (force)`);
    await admin!.end();
  };
  const url = new URL(inject('adminDatabaseUrl'));
  url.pathname = `/${databaseName}`;
  databaseUrl = url.toString();
  database = openDatabase(databaseUrl, { max: 4, applicationName: 'trainyard-cluster-test' });
  await runMigrations(database);
  const db = database.db;
  await seed(db, { adminPassword: 'admin-password-for-tests', findPython: () => Promise.resolve(null) });
  await createUser(db, { login: 'cluster', password: 'cluster-password-1', role: 'admin' });
  token = (await createToken(db, 'cluster')).token;

  await db
    .update(machines)
    .set({ slots: SLOTS })
    .where(inArray(machines.name, ['local']));
  for (let i = 0; i < 3; i++) sshds.push(await startSshd({ maxSessions: 50 }));
  const rows = await db
    .insert(machines)
    .values(
      sshds.map((sshd, i) => ({
        name: `ssh-${i + 1}`,
        kind: 'ssh',
        address: `${sshd.host}:${sshd.port}`,
        sshUser: sshd.username,
        privateKeyEncrypted: encryptSecret(TEST_SECRET, sshd.privateKey),
        hostKeyFingerprint: sshd.hostKeyFingerprint,
        slots: SLOTS,
      })),
    )
    .returning();
  const [local] = await db
    .select()
    .from(machines)
    .where(inArray(machines.name, ['local']));
  machineIds = [local!.id, ...rows.map((row) => row.id)];

  webs = [1, 2].map((n) => new Member(`web-${n}`, 'web', { PORT: '0', HOST: '127.0.0.1' }));
  for (const web of webs) web.env.PORT = String(await freePort());
  workers = [
    new Member('worker-1', 'worker', { TRAINYARD_LOCAL_MACHINE: 'true' }),
    new Member('worker-2', 'worker', { TRAINYARD_LOCAL_MACHINE: 'false' }),
    new Member('worker-3', 'worker', { TRAINYARD_LOCAL_MACHINE: 'false' }),
  ];
  // One at a time: five tsx start-ups at once on two cores take longer than one after another.
  for (const member of [...workers, ...webs]) await member.start();
}, 30 * 60_000);

afterAll(async () => {
  for (const member of [...webs, ...workers]) member.stopping = true;
  for (const child of children) {
    if (child.pid !== undefined && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
  }
  for (const sshd of sshds) await sshd.stop().catch(() => undefined);
  await database?.close();
  await server?.stop();
  await dropDatabase?.();
  fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** The example trainer, noting each launch's run directory in `launches`. */
async function trainerTemplate(totalSteps: number, stepDelayMs: number): Promise<number> {
  const [row] = await database!.db
    .insert(templates)
    .values({
      name: `cluster ${uid()}`,
      command: `echo "$TRAINYARD_RUN_DIR" >> "$LAUNCHES"; exec '${TSX}' '${EXAMPLE_TRAINER}'`,
      env: { LAUNCHES: launches },
      params: { step_delay_ms: stepDelayMs, log_every: 5, eval_every: 50 },
      totalSteps,
      stopGraceSeconds: 10,
    })
    .returning();
  return row!.id;
}

/** What a processes page knows of a row: the last version and status its live stream sent. */
interface Seen {
  version: number;
  status: string;
  at: number;
}

/**
 * A processes page's live stream (`…/processes/events`) read as the page's script reads it:
 * rows and blocks update what it shows; reopened elsewhere, it tells the server what it has
 * (`known=id:version,…`) so only what changed since comes again.
 */
class LiveStream {
  readonly seen = new Map<number, Seen>();
  private controller: AbortController | null = null;
  /** Resolves when the current connection ends (the server went away, or `close()`). */
  ended: Promise<void> = Promise.resolve();
  connectedTo: Member | null = null;

  constructor(readonly templateId: number) {}

  async open(web: Member): Promise<void> {
    const known = [...this.seen.entries()].map(([id, s]) => `${id}:${s.version}`).join(',');
    const controller = new AbortController();
    this.controller = controller;
    const response = await fetch(
      `${origin(web)}/training/templates/${this.templateId}/processes/events?after=0&known=${encodeURIComponent(known)}`,
      { headers: { authorization: `Bearer ${token}` }, signal: controller.signal },
    );
    if (response.status !== 200 || !response.body) throw new Error(`stream on ${web.name}: ${response.status}`);
    this.connectedTo = web;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    this.ended = (async () => {
      let buffer = '';
      try {
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            this.take(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch {
        // the connection dropped
      }
    })();
  }

  private take(event: string): void {
    const lines = event.split('\n');
    const name = lines.find((line) => line.startsWith('event: '))?.slice(7);
    const data = lines
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .join('\n');
    if (name !== 'row' && name !== 'block') return;
    const match = /data-id="(\d+)"\s+data-version="(-?\d+)"\s+data-status="(\w+)"/.exec(data);
    if (!match) throw new Error(`a ${name} without its row: ${data.slice(0, 300)}`);
    const id = Number(match[1]);
    const version = Number(match[2]);
    if (version >= (this.seen.get(id)?.version ?? -1))
      this.seen.set(id, { version, status: match[3]!, at: Date.now() });
  }

  close(): void {
    this.controller?.abort();
  }
}

interface ProcessJson {
  id: number;
  status: string;
}

/** Creates `count` processes spread over the machines and starts them, each call through the next web process. */
async function createAndStart(templateId: number, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const web = webs[i % webs.length]!;
    const created = await api<ProcessJson>(web, 'POST', '/processes', {
      templateId,
      machineId: machineIds[i % machineIds.length],
    });
    ids.push(created.id);
  }
  // All at once, as a sweep starts them: one after another, each start's answer (a second or
  // two on a loaded machine) added up to more than a run lasts, so fewer than half ever ran together.
  await Promise.all(ids.map((id, i) => api(webs[(i + 1) % webs.length]!, 'POST', `/processes/${id}/start`)));
  return ids;
}

async function statuses(ids: number[]): Promise<Map<number, { status: string; version: number; step: number }>> {
  const rows = await database!.db
    .select({ id: processes.id, status: processes.status, version: processes.statusVersion })
    .from(processes)
    .where(inArray(processes.id, ids));
  const steps = await database!.db
    .select({ processId: runs.processId, step: runs.step })
    .from(runs)
    .where(inArray(runs.processId, ids));
  const stepOf = new Map(steps.map((r) => [r.processId, r.step ?? 0]));
  return new Map(rows.map((r) => [r.id, { status: r.status, version: r.version, step: stepOf.get(r.id) ?? 0 }]));
}

/** Waits until `count` of the processes are running with at least `step` steps done. */
async function waitRunning(ids: number[], count: number, step: number): Promise<void> {
  let last = '';
  await waitFor(
    `${count} processes running past step ${step}`,
    async () => {
      const now = await statuses(ids);
      last = JSON.stringify([...now.entries()].map(([id, p]) => `${id}:${p.status}@${p.step}`));
      return [...now.values()].filter((p) => p.status === 'running' && p.step >= step).length >= count;
    },
    180_000,
    200,
  ).catch(async (error: Error) => {
    const db = database!.db;
    const leases = await db
      .execute(sql`select machine_id, count(*)::int as n from slot_leases group by 1`)
      .catch(() => []);
    const events = await db
      .execute(
        sql`select process_id, level, message from process_events where process_id in (${sql.join(
          ids.map((id) => sql`${id}`),
          sql`, `,
        )}) order by id desc limit 20`,
      )
      .catch(() => []);
    throw new Error(
      `${error.message}; last seen ${last}\nleases ${JSON.stringify(leases)}\nevents ${JSON.stringify(events)}\n${diagnostics()}`,
    );
  });
}

async function waitAllCompleted(ids: number[], timeoutMs = 240_000): Promise<void> {
  let last = '';
  await waitFor(
    `all ${ids.length} processes to complete`,
    async () => {
      const now = await statuses(ids);
      const counts = new Map<string, number>();
      for (const p of now.values()) counts.set(p.status, (counts.get(p.status) ?? 0) + 1);
      last = JSON.stringify(Object.fromEntries(counts));
      if ([...now.values()].some((p) => ['failed', 'lost', 'stopped', 'error'].includes(p.status)))
        throw new Error(`a process ended otherwise: ${last}`);
      return counts.get('completed') === ids.length;
    },
    timeoutMs,
    500,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last seen ${last}\n${diagnostics()}`);
  });
}

function diagnostics(): string {
  return [...webs, ...workers].map((m) => `--- ${m.name} ---\n${m.output.slice(-3000)}`).join('\n');
}

/** Processes whose environment names this file's launches file: trainers still alive. */
function trainersAlive(): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = fs.readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      // gone meanwhile, or not ours to read
      continue;
    }
    if (environ.split('\0').includes(`LAUNCHES=${launches}`)) found.push(Number(entry));
  }
  return found;
}

/** Every process completed with one run, launched once, every written point stored once; no trainer left. */
async function expectAllDone(ids: number[]): Promise<void> {
  const rows = await database!.db.select().from(runs).where(inArray(runs.processId, ids));
  const runsOf = new Map<number, Array<(typeof rows)[number]>>();
  for (const row of rows) runsOf.set(row.processId, [...(runsOf.get(row.processId) ?? []), row]);
  const launched = fs.readFileSync(launches, 'utf8').trim().split('\n');
  const stack = { database: database! };
  for (const id of ids) {
    const own = runsOf.get(id) ?? [];
    expect(
      own.map((r) => r.status),
      `runs of process ${id}`,
    ).toEqual(['completed']);
    const run = own[0]!;
    expect(launched.filter((line) => line === run.runDir).length, `launches of process ${id}`).toBe(1);
    const written = writtenPoints(path.join(run.runDir!, 'metrics.jsonl'));
    expect(written.size).toBeGreaterThan(0);
    expect(await storedPoints(stack, run.id), `points of process ${id}`).toEqual(written);
    expect(run.pgid !== null && groupAlive(run.pgid), `trainer group of process ${id}`).toBe(false);
  }
  expect(trainersAlive()).toEqual([]);
}

describe('a cluster of two web and three worker processes on a Temporal server on PostgreSQL', () => {
  it('runs 60 processes started through alternating web processes; a change made through one web process reaches the other’s live stream within 1 s', async () => {
    const from = Date.now();
    const templateId = await trainerTemplate(60, 20);
    const streams = [new LiveStream(templateId), new LiveStream(templateId)];
    await Promise.all(streams.map((stream, i) => stream.open(webs[i]!)));
    const ids: number[] = [];
    for (let i = 0; i < 60; i++) {
      const created = await api<ProcessJson>(webs[i % 2]!, 'POST', '/processes', {
        templateId,
        machineId: machineIds[i % machineIds.length],
      });
      ids.push(created.id);
    }
    await waitFor('both streams to show the 60 processes', async () =>
      streams.every((stream) => ids.every((id) => stream.seen.get(id)?.status === 'created')),
    );
    // Halfway through the starts, with the load running: a change that stays (disable),
    // through each web process in turn, timed from when the worker wrote it (`updated_at`)
    // to the other web's stream.
    const fromWrite: number[] = [];
    // Two processes of their own, never started, so nothing else changes them.
    const probe = async () => {
      for (const [i, web] of webs.entries()) {
        const { id } = await api<ProcessJson>(web, 'POST', '/processes', { templateId, machineId: machineIds[0] });
        const watched = streams[(i + 1) % 2]!;
        await waitFor(`process ${id} on the stream`, async () => watched.seen.get(id)?.status === 'created', 5000, 10);
        await api(web, 'POST', `/processes/${id}/disable`);
        const seen = await waitFor(
          `process ${id} disabled through ${web.name} on the other stream`,
          async () => (watched.seen.get(id)?.status === 'disabled' ? watched.seen.get(id) : null),
          10_000,
          10,
        );
        const [row] = await database!.db
          .select({ updatedAt: processes.updatedAt })
          .from(processes)
          .where(inArray(processes.id, [id]));
        fromWrite.push(seen.at - row!.updatedAt.getTime());
      }
    };
    // Each start through one web process, watched on the other's stream: the load grows as they
    // go. Timed from the answer (the change is made) and from the request, to the other stream's row.
    const latencies: number[] = [];
    const withRequest: number[] = [];
    for (const [i, id] of ids.entries()) {
      if (i === 30) await probe();
      const through = webs[i % 2]!;
      const watched = streams[(i + 1) % 2]!;
      const sent = Date.now();
      await api(through, 'POST', `/processes/${id}/start`);
      const answered = Date.now();
      const seen = await waitFor(
        `process ${id} started through ${through.name} on ${watched.connectedTo!.name}'s stream`,
        async () => {
          const row = watched.seen.get(id);
          return row && row.status !== 'created' ? row : null;
        },
        10_000,
        10,
      );
      latencies.push(seen.at - answered);
      withRequest.push(seen.at - sent);
    }
    latencies.sort((a, b) => a - b);
    withRequest.sort((a, b) => a - b);
    console.log(
      `[cluster] start answered → other web's stream: median ${latencies[30]} ms, max ${latencies.at(-1)} ms; ` +
        `from the request: median ${withRequest[30]} ms, max ${withRequest.at(-1)} ms (${Date.now() - from} ms)`,
    );
    // Seen no later than 1 s after the web process answered (most are seen before: the
    // worker records the new status while the update is still being answered).
    expect(latencies.at(-1)).toBeLessThan(1000);

    for (const stream of streams) stream.close();
    console.log(`[cluster] disable written → other web's stream under load: ${fromWrite.join(', ')} ms`);
    for (const took of fromWrite) expect(took).toBeLessThan(1000);
    await waitAllCompleted(ids);
    await expectAllDone(ids);
    expect([...webs, ...workers].flatMap((member) => member.crashes)).toEqual([]);
    console.log(`[cluster] 60 processes: ${Date.now() - from} ms`);
  }, 600_000);

  /** 16 processes, four a machine, all at once; `fault` strikes once half of them are well under way. */
  async function underFault(
    what: string,
    fault: () => Promise<string>,
    options: { crashesTolerated?: boolean } = {},
  ): Promise<void> {
    const from = Date.now();
    const templateId = await trainerTemplate(300, 25);
    const ids = await createAndStart(templateId, 16);
    await waitRunning(ids, 8, 30);
    const struck = Date.now();
    const did = await fault();
    await waitAllCompleted(ids);
    await expectAllDone(ids);
    const crashed = [...webs, ...workers].flatMap((member) => member.crashes.splice(0));
    console.log(
      `[cluster] ${what}: ${did}; all completed ${Date.now() - struck} ms after (${Date.now() - from} ms)` +
        (crashed.length > 0 ? `; exited unasked and restarted:\n${crashed.join('\n')}` : ''),
    );
    if (!options.crashesTolerated) expect(crashed).toEqual([]);
  }

  it('finishes every process when one worker is SIGKILLed and another SIGTERMed (a deploy) mid-run', async () => {
    await underFault('workers killed', async () => {
      const from = Date.now();
      await Promise.all([workers[0]!.kill('SIGKILL'), workers[1]!.kill('SIGTERM')]);
      const down = Date.now() - from;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await Promise.all(workers.slice(0, 2).map((worker) => worker.start()));
      return `worker-1 (local) SIGKILLed, worker-2 SIGTERMed (exited in ${down} ms), both back ${Date.now() - from} ms later`;
    });
  }, 600_000);

  it('finishes every process when the Temporal server process is killed and started again mid-run', async () => {
    await underFault('Temporal server restarted', async () => {
      const from = Date.now();
      await server!.restart('SIGKILL');
      return `server SIGKILLed and serving again in ${Date.now() - from} ms`;
    });
  }, 600_000);

  it('finishes every process when every PostgreSQL connection is cut mid-run', async () => {
    await underFault('connections cut', async () => {
      const names = [databaseName, server!.databases.store, server!.databases.visibility];
      const cut = async () => {
        const rows = await admin!`
          select pg_terminate_backend(pid) as done from pg_stat_activity
          where datname in ${admin!(names)} and pid <> pg_backend_pid()`;
        return rows.length;
      };
      const first = await cut();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const second = await cut();
      return `${first} connections terminated, then the ${second} reopened 1.5 s later`;
      // postgres.js 3.4.9 throws from a write queued on a connection the server closed
      // (porsager/postgres#1208); lib/postgres-quirks.ts lets the processes live through it.
    });
  }, 600_000);

  it('keeps open live streams whole when their web process is killed: they reconnect to the other and miss no change', async () => {
    const from = Date.now();
    const templateId = await trainerTemplate(300, 25);
    const streams = [new LiveStream(templateId), new LiveStream(templateId)];
    for (const stream of streams) await stream.open(webs[0]!);
    const ids = await createAndStart(templateId, 16);
    await waitRunning(ids, 8, 30);
    await webs[0]!.kill('SIGKILL');
    const killed = Date.now();
    // What the page's script does when its stream drops: reopen, saying what it shows.
    await Promise.all(
      streams.map(async (stream) => {
        await stream.ended;
        await stream.open(webs[1]!);
      }),
    );
    const reconnected = Date.now() - killed;
    await waitAllCompleted(ids);
    const final = await statuses(ids);
    await waitFor(
      'both streams to show every process as it is',
      async () =>
        streams.every((stream) =>
          ids.every((id) => {
            const seen = stream.seen.get(id);
            return seen?.status === final.get(id)!.status && seen.version === final.get(id)!.version;
          }),
        ),
      5000,
    );
    for (const stream of streams) stream.close();
    await expectAllDone(ids);
    await webs[0]!.start();
    expect([...webs, ...workers].flatMap((member) => member.crashes)).toEqual([]);
    console.log(
      `[cluster] web-1 SIGKILLed under 2 streams: reconnected to web-2 in ${reconnected} ms; ` +
        `all completed and shown (${Date.now() - from} ms)`,
    );
  }, 600_000);
});
