// What an operator scrapes and what Temporal records of a deploy: a real `trainyard worker`
// with TRAINYARD_BUILD_ID and both metrics addresses runs a process to completed and stops
// another on `local`; its /metrics, the SDK's endpoint and the web /metrics then show each
// figure docs/operations.md lists, and the workflow's history names the build.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { act, createProcess } from '../../services/processes.js';
import { makeActor, startApp, viaToken, type TestApp } from '../support/app.js';
import {
  exampleTemplate,
  localMachine,
  makeTemplate,
  startStack,
  startWorkerProcess,
  uid,
  waitForStatus,
  workerOutput,
  type Stack,
} from '../support/stack.js';

let stack: Stack;
let web: TestApp;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  stack = await startStack({ worker: false });
  web = await startApp(stack);
});
afterEach(() => {
  for (const w of workers.splice(0)) if (w.exitCode === null && w.signalCode === null) process.kill(-w.pid!, 'SIGKILL');
});
afterAll(async () => {
  await web?.close();
  await stack?.close();
});

/** A port nobody listens on now (the kernel's pick, released at once). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Samples of a Prometheus text exposition: `name{labels}` → value. */
function samples(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    out.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `labels`. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = samples(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([key, v]) => s.labels[key] === v),
  );
  if (found.length === 0) throw new Error(`no sample ${name}${JSON.stringify(labels)} in:\n${text}`);
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(address: string): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

describe('a worker started with a build id and metrics addresses', () => {
  it('serves its metrics and the SDK metrics, the web serves its own, and Temporal records the build id', async () => {
    const buildId = `telemetry-test-${uid()}`;
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    const sdkAddress = `127.0.0.1:${await freePort()}`;
    const machine = await localMachine(stack);
    const workerProcess = await startWorkerProcess(stack, workers, {
      TRAINYARD_BUILD_ID: buildId,
      TRAINYARD_WORKER_METRICS_ADDRESS: metricsAddress,
      TRAINYARD_WORKER_SDK_METRICS_ADDRESS: sdkAddress,
    });
    expect(workerOutput(workerProcess)).toContain(`(build ${buildId}, metrics on http://${metricsAddress}/metrics)`);

    // Completed: points, a launch, and two lines the reader passes over.
    const template = await makeTemplate(stack, {
      command: `printf '{"step":1,"loss":0.5}\\nnot json\\n{"step":2,"loss":0.4}\\n{"loss":1}\\n' >> "$TRAINYARD_METRICS_FILE"`,
      totalSteps: 2,
    });
    const completed = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, completed.id, 'start');
    await waitForStatus(stack, completed.id, 'completed', 60_000);

    // Stopped: a stop's latency.
    const long = await exampleTemplate(stack, { step_delay_ms: 50 }, { totalSteps: 100_000 });
    const stopped = await createProcess(stack.deps, { templateId: long.id, machineId: machine.id });
    await act(stack.deps, stopped.id, 'start');
    await waitForStatus(stack, stopped.id, 'running', 60_000);
    await act(stack.deps, stopped.id, 'stop');
    await waitForStatus(stack, stopped.id, 'stopped', 60_000);

    const worker = await scrape(metricsAddress);
    expect(value(worker, 'trainyard_runs_started_total', { machine: 'local' })).toBeGreaterThanOrEqual(2);
    expect(value(worker, 'trainyard_runs_finished_total', { outcome: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(value(worker, 'trainyard_runs_finished_total', { outcome: 'stopped' })).toBeGreaterThanOrEqual(1);
    expect(value(worker, 'trainyard_metric_points_ingested_total')).toBeGreaterThanOrEqual(2);
    expect(value(worker, 'trainyard_metric_lines_skipped_total')).toBeGreaterThanOrEqual(2);
    expect(value(worker, 'trainyard_metric_ingest_lag_seconds_count')).toBeGreaterThan(0);
    expect(value(worker, 'trainyard_metric_ingest_lag_seconds_sum')).toBeGreaterThanOrEqual(0);
    expect(value(worker, 'trainyard_trainer_launch_seconds_count', { machine: 'local' })).toBeGreaterThanOrEqual(2);
    expect(value(worker, 'trainyard_trainer_stop_seconds_count', { machine: 'local' })).toBeGreaterThanOrEqual(1);
    expect(value(worker, 'trainyard_machine_reachable', { machine: 'local' })).toBe(1);
    expect(value(worker, 'trainyard_machine_slots', { machine: 'local' })).toBe(machine.slots);
    expect(value(worker, 'trainyard_machine_slots_used', { machine: 'local' })).toBe(0);

    const sdk = await scrape(sdkAddress);
    expect(sdk).toMatch(/^temporal_workflow_task_execution_latency_(bucket|count)/m);
    expect(sdk).toMatch(/^temporal_activity_execution_latency_(bucket|count)/m);
    expect(sdk).toMatch(/^temporal_worker_task_slots_(available|used)/m);
    // The SDK metrics the dashboard reads (test/unit/telemetry-names.test.ts checks the app's).
    const dashboard = fs.readFileSync('docker/grafana/trainyard.json', 'utf8');
    const sdkNames = new Set(samples(sdk).map((s) => s.name));
    const wanted = [...new Set(dashboard.match(/temporal_[a-z_]+/g) ?? [])];
    expect(wanted.length).toBeGreaterThan(0);
    expect(wanted.filter((name) => !sdkNames.has(name))).toEqual([]);

    const viewer = await makeActor(stack, [{ role: 'viewer' }]);
    expect((await viaToken(web.app, viewer, { url: '/metrics' })).statusCode).toBe(200);
    const response = await viaToken(web.app, viewer, { url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(value(response.body, 'trainyard_processes', { status: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(value(response.body, 'trainyard_processes', { status: 'stopped' })).toBeGreaterThanOrEqual(1);
    // The first scrape, counted by its route pattern.
    expect(
      value(response.body, 'trainyard_http_requests_total', { method: 'GET', route: '/metrics', status: '200' }),
    ).toBeGreaterThanOrEqual(1);

    // The build id as Temporal keeps it: on the workflow tasks this worker completed, in the run that
    // ran the trainer — the one before the latest, which it continued as new into, and whose first
    // task may not be completed yet.
    const latest = await stack.client.workflow.getHandle(completed.workflowId).fetchHistory();
    const previous = latest.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    const events = [
      ...(previous
        ? ((await stack.client.workflow.getHandle(completed.workflowId, previous).fetchHistory()).events ?? [])
        : []),
      ...(latest.events ?? []),
    ];
    const builds = events.flatMap((event) => {
      const done = event.workflowTaskCompletedEventAttributes;
      if (!done) return [];
      // Servers of different ages fill the newer or the older fields.
      const deployment = done.deploymentVersion?.deploymentName ?? done.workerDeploymentName;
      return [`${deployment}/${done.deploymentVersion?.buildId ?? done.workerVersion?.buildId}`];
    });
    expect(builds).toContain(`trainyard/${buildId}`);
  });
});
