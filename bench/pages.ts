// DESIGN §8 "pages": the processes page of a template with 10 000 processes, under 20
// concurrent clients from a second process (Debian's `wrk`, else a fetch loop in a
// child node), against the real server (buildApp on a free port, logged in as admin).
// Server time is measured in the server, by an onResponse hook (Fastify's
// reply.elapsedTime: from the request reaching Fastify to the response written);
// wrk's client-side latency is printed beside it. Baseline: GET /healthz (one database
// round trip and one Temporal call) under the same load, in the same run.
// Usage: npm run bench -- pages [--quick]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildApp } from '../api/app.js';
import { loadConfig } from '../lib/config.js';
import { freePort } from '../lib/temporal-dev-server.js';
import { seed } from '../services/seed.js';
import {
  ADMIN_PASSWORD,
  BENCH_SECRET,
  ROOT,
  createBenchDatabase,
  killGroup,
  ms,
  onCleanup,
  printTable,
  quick,
  run,
  sleep,
  startTemporal,
  temporalClient,
  stats,
  tempDir,
  triple,
  type Row,
} from './support.js';

const PROCESSES = 10_000;
const OTHER_PROCESSES = 2_000; // in nine other templates, so the template filter has work to do
const CLIENTS = 20;
const SECONDS = quick ? 3 : 15;
/** Think time of the paced clients: 20 users each asking once a second, rather than as fast as answered. */
const THINK_MS = 1000;
const ROUNDS = quick ? 1 : 2;
const PAGE_SIZE = 50; // api/routes/ui/processes.ts PAGE_SIZE
const TARGET_P95 = 50;

interface Load {
  requests: number;
  perSecond: number;
  errors: number;
  /** Client-side latency in ms, from the load generator. */
  client: { p50: number; p95: number; max: number };
}

// Random think time (mean THINK_MS), so the 20 clients do not move in lockstep.
const WRK_PACED = `math.randomseed(os.time())\ndelay = function() return math.random(${THINK_MS / 2}, ${(THINK_MS * 3) / 2}) end\n`;
const WRK_SCRIPT = `done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %d %d\\n", summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status, latency:percentile(50), latency:percentile(95), latency.max, summary.duration))
end
`;

// The fallback load generator: CLIENTS loops of fetch for SECONDS, in its own process.
const FETCH_LOOP = `
const [url, cookie, clients, seconds, think] = process.argv.slice(1);
const until = Date.now() + Number(seconds) * 1000;
const times = []; let errors = 0;
await Promise.all(Array.from({ length: Number(clients) }, async () => {
  while (Date.now() < until) {
    const t = performance.now();
    try { const r = await fetch(url, { headers: { cookie } }); await r.arrayBuffer(); if (r.status >= 400) errors++; } catch { errors++; }
    times.push(performance.now() - t);
    if (Number(think) > 0) await new Promise((r) => setTimeout(r, Number(think) * (0.5 + Math.random())));
  }
}));
times.sort((a, b) => a - b);
const at = (p) => times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)];
console.log(JSON.stringify({ requests: times.length, errors, p50: at(0.5), p95: at(0.95), max: times[times.length - 1], seconds: Number(seconds) }));
`;

const hasWrk = spawnSync('wrk', ['--version']).error === undefined;

/**
 * Offers CLIENTS concurrent clients for `seconds` from another process: each sends its
 * next request as soon as the last is answered (saturated), or THINK_MS after (paced).
 */
async function load(url: string, cookie: string, seconds: number, scripts: string, paced: boolean): Promise<Load> {
  const script = path.join(scripts, paced ? 'paced.lua' : 'report.lua');
  const child = hasWrk
    ? spawn(
        'wrk',
        [
          '-t',
          '2',
          '-c',
          String(CLIENTS),
          '-d',
          `${seconds}s`,
          '--timeout',
          '10s',
          '-s',
          script,
          '-H',
          `Cookie: ${cookie}`,
          url,
        ],
        {
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
    : spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          FETCH_LOOP,
          url,
          cookie,
          String(CLIENTS),
          String(seconds),
          String(paced ? THINK_MS : 0),
        ],
        {
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
  const undo = () => killGroup(child, 2000);
  onCleanup('the load generator', undo);
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (hasWrk) {
    const m = /BENCH (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(out);
    if (code !== 0 || !m) throw new Error(`wrk failed (${code}): ${out}`);
    const [requests, ioErrors, statusErrors, p50, p95, max, durationUs] = m.slice(1).map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    return {
      requests,
      perSecond: requests / (durationUs / 1e6),
      errors: ioErrors + statusErrors,
      client: { p50: p50 / 1000, p95: p95 / 1000, max: max / 1000 },
    };
  }
  const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as {
    requests: number;
    errors: number;
    p50: number;
    p95: number;
    max: number;
    seconds: number;
  };
  return {
    requests: r.requests,
    perSecond: r.requests / r.seconds,
    errors: r.errors,
    client: { p50: r.p50, p95: r.p95, max: r.max },
  };
}

await run('pages', async () => {
  // Every query the server sends, while `queries` is set (postgres.js's debug hook: pg_stat_statements needs a
  // preloaded library that a stock PostgreSQL does not have).
  let queries: string[] | null = null;
  const [{ url, database }, temporal] = await Promise.all([
    createBenchDatabase('pages', { max: 10, onQuery: (query) => queries?.push(query) }),
    startTemporal(),
  ]);
  const { db, sql } = database;
  await seed(db, { adminPassword: ADMIN_PASSWORD });

  // The data, straight in SQL: ten machines, ten templates, 12 000 processes in a mix of
  // statuses, and for every process that ever ran 1–3 runs (the latest one unfinished
  // when the process is active).
  const seeded = performance.now();
  await sql`insert into machines (name, kind, address, ssh_user, slots) select 'gpu-' || g, 'ssh', '10.0.0.' || g || ':22', 'train', 4 from generate_series(1, 10) g`;
  const [page] = await sql<
    { id: number }[]
  >`insert into templates (name, command, total_steps) values ('bench: the big one', 'python train.py', 10000) returning id`;
  await sql`insert into templates (name, command, total_steps) select 'bench: other ' || g, 'python train.py', 5000 from generate_series(1, 9) g`;
  const templateId = page!.id;
  await sql`
    insert into processes (template_id, machine_id, params, status, status_version, last_error, created_at)
    select ${templateId}, m.id, jsonb_build_object('learning_rate', 0.001 * (g % 7 + 1), 'batch_size', 32 * (g % 4 + 1)),
           s.status, 3 + g % 5, case when s.status = 'failed' then 'The trainer exited with code 1: CUDA out of memory' end,
           now() - (g || ' minutes')::interval
    from generate_series(1, ${PROCESSES}) g
    cross join lateral (select (array['completed','completed','completed','completed','stopped','stopped','failed','failed','running','running','created','disabled'])[1 + g % 12] as status) s
    join lateral (select id from machines order by id offset (g % 11) limit 1) m on true`;
  await sql`
    insert into processes (template_id, machine_id, status, status_version)
    select t.id, (select min(id) from machines), (array['completed','stopped','failed','running'])[1 + g % 4], 2
    from generate_series(1, ${OTHER_PROCESSES}) g
    join lateral (select id from templates where name like 'bench: other %' order by id offset (g % 9) limit 1) t on true`;
  await sql`
    insert into runs (process_id, number, template_snapshot, machine_id, status, run_dir, step, total_steps, eta_state, queued_at, started_at, finished_at, exit_code)
    select p.id, n, '{"command":"python train.py"}'::jsonb, p.machine_id,
           case when n = k then p.status else 'stopped' end,
           '/home/train/.trainyard/runs/process-' || p.id || '/run-' || n,
           case when n = k and p.status = 'running' then 1234 else 10000 end, 10000,
           case when n = k and p.status = 'running'
             then jsonb_build_object('version', 1, 'halfLifeMs', 60000, 'totalSteps', 10000, 'step', 1234, 'progressAtMs', (extract(epoch from now()) * 1000)::bigint, 'steps', 100, 'elapsedMs', 5000, 'reports', 10) end,
           now() - interval '2 hours', now() - interval '2 hours',
           case when n = k and p.status = 'running' then null else now() - interval '1 hour' end,
           case when n = k and p.status = 'running' then null when p.status = 'failed' and n = k then 1 else 0 end
    from processes p
    cross join lateral (select 1 + p.id % 3 as k) kk
    cross join lateral generate_series(1, kk.k) n
    where p.status not in ('created')`;
  await sql`analyze`;
  const [{ n: runCount } = { n: '0' }] = await sql<{ n: string }[]>`select count(*) as n from runs`;
  const seedS = (performance.now() - seeded) / 1000;

  const config = loadConfig({ DATABASE_URL: url, TRAINYARD_SECRET: BENCH_SECRET, LOG_LEVEL: 'warn' }, ROOT);
  const app = await buildApp({
    config,
    db,
    sql,
    secret: BENCH_SECRET,
    temporal: await temporalClient(temporal.address),
    temporalUiUrl: null,
  });
  // Server time: every response while a measurement is on, by route.
  let recording: number[] | null = null;
  app.addHook('onResponse', async (_request, reply) => {
    recording?.push(reply.elapsedTime);
  });
  const port = await freePort();
  await app.listen({ host: '127.0.0.1', port });
  onCleanup('the web server', () => app.close());
  const base = `http://127.0.0.1:${port}`;

  const login = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ login: 'admin', password: ADMIN_PASSWORD }),
    redirect: 'manual',
  });
  const session = /ty_session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
  if (login.status !== 303 || !session) throw new Error(`login failed: ${login.status}`);
  const cookie = `${session}; ty_lang=en`;
  const pageUrl = `${base}/training/templates/${templateId}/processes`;

  // The page is paginated: at most PAGE_SIZE rows, a link on to the next page, and a deep page
  // costs what the first does.
  const get = async (u: string) => {
    const r = await fetch(u, { headers: { cookie } });
    const body = await r.text();
    if (r.status !== 200) throw new Error(`GET ${u}: ${r.status} ${body.slice(0, 300)}`);
    return body;
  };
  const first = await get(pageUrl);
  const rowsOnFirst = (first.match(/class="process-row/g) ?? []).length;
  const nextLink = /[?&]after=(\d+)/.exec(first);
  const ids = await sql<{ id: number }[]>`select id from processes where template_id = ${templateId} order by id`;
  // Newest first: the page after this id holds the oldest PAGE_SIZE.
  const deepAfter = ids[PAGE_SIZE]!.id;
  const timeOne = async (u: string, times: number) => {
    const xs: number[] = [];
    recording = xs;
    for (let i = 0; i < times; i++) await get(u);
    recording = null;
    return stats(xs);
  };
  await timeOne(pageUrl, 5); // warm-up: plans, caches, JIT
  const singleFirst = await timeOne(pageUrl, quick ? 10 : 30);
  const singleDeep = await timeOne(`${pageUrl}?after=${deepAfter}`, quick ? 10 : 30);
  const deepRows = ((await get(`${pageUrl}?after=${deepAfter}`)).match(/class="process-row/g) ?? []).length;
  const sortedUrl = `${pageUrl}?sort=progress&order=desc`;
  const singleSorted = await timeOne(sortedUrl, quick ? 10 : 30);
  // Queries per request: a few sequential requests, every query the server sent meanwhile.
  const perRequest = async (u: string) => {
    const sent: string[] = [];
    queries = sent;
    const times = 10;
    for (let i = 0; i < times; i++) await get(u);
    queries = null;
    const shapes = [...new Set(sent.map((q) => q.replace(/\s+/g, ' ').slice(0, 60)))];
    return { perPage: sent.length / times, shapes };
  };
  const pageQueries = await perRequest(pageUrl);
  const healthQueries = await perRequest(`${base}/healthz`);
  const menuUrl = `${base}/training/processes/${ids[ids.length - 1]!.id}/menu`;
  const singleMenu = await timeOne(menuUrl, quick ? 10 : 30);

  const scripts = tempDir('pages-wrk');
  fs.writeFileSync(path.join(scripts, 'report.lua'), WRK_SCRIPT);
  fs.writeFileSync(path.join(scripts, 'paced.lua'), WRK_PACED + WRK_SCRIPT);
  await load(pageUrl, cookie, 2, scripts, false); // warm-up under load
  type Which = 'page' | 'health';
  const server: Record<'saturated' | 'paced', Record<Which, number[]>> = {
    saturated: { page: [], health: [] },
    paced: { page: [], health: [] },
  };
  const clients: Record<'saturated' | 'paced', Record<Which, Load[]>> = {
    saturated: { page: [], health: [] },
    paced: { page: [], health: [] },
  };
  const measure = async (mode: 'saturated' | 'paced', which: Which) => {
    const xs: number[] = [];
    recording = xs;
    clients[mode][which].push(
      await load(which === 'page' ? pageUrl : `${base}/healthz`, cookie, SECONDS, scripts, mode === 'paced'),
    );
    recording = null;
    server[mode][which].push(...xs);
    await sleep(200);
  };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order, so a noisy spell on the shared machine falls on both.
    for (const which of round % 2 === 0 ? (['page', 'health'] as const) : (['health', 'page'] as const))
      await measure('saturated', which);
  }
  for (const which of ['page', 'health'] as const) await measure('paced', which);
  const sp = stats(server.saturated.page);
  const sh = stats(server.saturated.health);
  const pp = stats(server.paced.page);
  const ph = stats(server.paced.health);
  const merge = (ls: Load[]) => ({
    requests: ls.reduce((a, l) => a + l.requests, 0),
    perSecond: ls.reduce((a, l) => a + l.perSecond, 0) / ls.length,
    errors: ls.reduce((a, l) => a + l.errors, 0),
    p95: Math.max(...ls.map((l) => l.client.p95)),
    p50: ls.map((l) => l.client.p50).sort((a, b) => a - b)[Math.floor(ls.length / 2)]!,
  });
  const cp = merge(clients.saturated.page);
  const ch = merge(clients.saturated.health);
  const cpp = merge(clients.paced.page);
  const cph = merge(clients.paced.health);

  const rows: Row[] = [
    {
      figure: `page, ${CLIENTS} clients saturating: server time p50/p95/max`,
      value: triple(sp),
      baseline: `${triple(sh)} (/healthz)`,
      ratio: sp.p95 / sh.p95,
      target: `p95 < ${TARGET_P95} ms`,
      met: sp.p95 < TARGET_P95,
    },
    {
      figure: `page, ${CLIENTS} clients saturating: client p50/p95`,
      value: `${ms(cp.p50)} / ${ms(cp.p95)}`,
      baseline: `${ms(ch.p50)} / ${ms(ch.p95)} (/healthz)`,
      ratio: cp.p95 / ch.p95,
    },
    {
      figure: 'page, saturating: throughput (requests/s)',
      value: `${cp.perSecond.toFixed(0)}`,
      baseline: `${ch.perSecond.toFixed(0)} (/healthz)`,
      ratio: cp.perSecond / ch.perSecond,
    },
    {
      figure: `page, ${CLIENTS} clients paced (1 request/s each): server time`,
      value: triple(pp),
      baseline: `${triple(ph)} (/healthz)`,
      ratio: pp.p95 / ph.p95,
      target: `p95 < ${TARGET_P95} ms`,
      met: pp.p95 < TARGET_P95,
    },
    {
      figure: `page, ${CLIENTS} clients paced: client p50/p95`,
      value: `${ms(cpp.p50)} / ${ms(cpp.p95)}`,
      baseline: `${ms(cph.p50)} / ${ms(cph.p95)} (/healthz)`,
      ratio: cpp.p95 / cph.p95,
    },
    {
      figure: 'requests (errors: non-2xx or socket)',
      value: `${cp.requests + cpp.requests} (${cp.errors + cpp.errors})`,
      baseline: `${ch.requests + cph.requests} (${ch.errors + cph.errors}) (/healthz)`,
      target: 'no page errors',
      met: cp.errors + cpp.errors === 0,
    },
    {
      figure: 'paginated: rows on the first page',
      value: `${rowsOnFirst} of ${PROCESSES}, next link ${nextLink ? 'present' : 'missing'}`,
      target: `≤ ${PAGE_SIZE}`,
      met: rowsOnFirst > 0 && rowsOnFirst <= PAGE_SIZE && nextLink !== null,
    },
    {
      figure: 'queries per page (database round trips)',
      value: `${pageQueries.perPage}`,
      baseline: `${healthQueries.perPage} (/healthz)`,
      target: '≤ 3 (5 before: session, grants, template, status versions, rows)',
      met: pageQueries.perPage <= 3,
    },
    { figure: 'one client: first page, server time', value: triple(singleFirst) },
    {
      figure: 'one client: first page sorted by progress, server time',
      value: triple(singleSorted),
      baseline: `${ms(singleFirst.p50)} p50 (newest first)`,
      ratio: singleSorted.p50 / singleFirst.p50,
    },
    { figure: 'one client: a row’s ☰ menu (fetched on open), server time', value: triple(singleMenu) },
    {
      figure: `one client: page after #${deepAfter} (${deepRows} rows)`,
      value: triple(singleDeep),
      baseline: `${ms(singleFirst.p50)} p50 (first page)`,
      ratio: singleDeep.p50 / singleFirst.p50,
    },
  ];
  printTable(
    `pages — ${PROCESSES.toLocaleString('en-US')} processes in the template (${(PROCESSES + OTHER_PROCESSES).toLocaleString('en-US')} in all, ${Number(runCount).toLocaleString('en-US')} runs), ${CLIENTS} clients; saturating ${ROUNDS} × ${SECONDS} s, paced ${SECONDS} s`,
    rows,
    [
      `Server time: an onResponse hook's reply.elapsedTime in the server (this process). Client latency and throughput: ${hasWrk ? '`wrk -t2 -c20` (Debian package)' : 'a fetch loop in a child node process'}, a second process on the same 2 cores. ` +
        `Saturating: each client sends its next request as soon as the last is answered, so server time there is mostly waiting behind the other 19 in one event loop (≈ ${CLIENTS} ÷ throughput). ` +
        `Paced: each client waits ${THINK_MS / 2}–${(THINK_MS * 3) / 2} ms (random) between requests (wrk's delay()), ≈ ${CLIENTS} requests/s offered. ` +
        `/healthz does one \`select 1\` and one Temporal GetSystemInfo. Data seeded in ${seedS.toFixed(1)} s by SQL; no workflows (a page read needs none). ` +
        `Queries of a page: ${pageQueries.shapes.map((q) => `\`${q}…\``).join(', ')}.`,
    ],
  );
});
