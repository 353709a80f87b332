// A worker process's own Prometheus metrics, in a registry of its own (never prom-client's
// global one): the hooks of telemetry/hooks.ts as counters and histograms, plus slot use
// per machine read from the database at scrape time (leases are shared by every worker,
// so each worker reports the same figure: aggregate with max, not sum).
import { sql } from 'drizzle-orm';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../db/client.js';
import type { WorkerTelemetry } from './hooks.js';

export interface WorkerMetrics {
  registry: Registry;
  telemetry: WorkerTelemetry;
}

/** Seconds; trainer launches and stops take from milliseconds (local) to a minute (a grace period). */
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Seconds; a commit is due every 500 ms of held lines (metrics/tail.ts), so most lag sits under a second. */
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

/** `db` null: no slot gauge (a registry for checking metric names). */
export function createWorkerMetrics(deps: { db: Db | null }): WorkerMetrics {
  const registry = new Registry();
  const registers = [registry];
  const runsStarted = new Counter({
    name: 'trainyard_runs_started_total',
    help: 'Trainer launches by this worker, by machine.',
    labelNames: ['machine'],
    registers,
  });
  const runsFinished = new Counter({
    name: 'trainyard_runs_finished_total',
    help: 'Runs finished by this worker, by outcome (the status the process ended the run in).',
    labelNames: ['outcome'],
    registers,
  });
  const pointsIngested = new Counter({
    name: 'trainyard_metric_points_ingested_total',
    help: 'Metric points committed to the database.',
    registers,
  });
  const linesSkipped = new Counter({
    name: 'trainyard_metric_lines_skipped_total',
    help: 'Metric lines passed over: malformed, or over the length limit.',
    registers,
  });
  const ingestLag = new Histogram({
    name: 'trainyard_metric_ingest_lag_seconds',
    help: 'From the worker first reading a batch of metric lines off the file to its commit standing.',
    buckets: LAG_BUCKETS,
    registers,
  });
  const reachable = new Gauge({
    name: 'trainyard_machine_reachable',
    help: '1 when the last probe of a machine this worker serves found it answering, 0 when it did not.',
    labelNames: ['machine'],
    registers,
  });
  const launchLatency = new Histogram({
    name: 'trainyard_trainer_launch_seconds',
    help: 'From the launch activity starting to the trainer running.',
    labelNames: ['machine'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const stopLatency = new Histogram({
    name: 'trainyard_trainer_stop_seconds',
    help: 'From the first TERM sent to a trainer to its process group gone (a KILL after the grace included).',
    labelNames: ['machine'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const db = deps.db;
  const slotQuery = db
    ? () =>
        db.execute<{ machine: string; slots: number; used: number }>(
          sql`select m.name as machine, m.slots::int as slots,
                (select count(*)::int from slot_leases l where l.machine_id = m.id) as used
              from machines m`,
        )
    : null;
  // Each gauge reads the table itself when scraped: one does not see the other's collect.
  new Gauge({
    name: 'trainyard_machine_slots_used',
    help: 'Slots of each machine held by a run (the same figure on every worker: aggregate with max).',
    labelNames: ['machine'],
    registers,
    async collect() {
      if (!slotQuery) return;
      const rows = await slotQuery();
      this.reset();
      for (const row of rows) this.set({ machine: row.machine }, row.used);
    },
  });
  new Gauge({
    name: 'trainyard_machine_slots',
    help: 'Slots each machine has (runs it may hold at once).',
    labelNames: ['machine'],
    registers,
    async collect() {
      if (!slotQuery) return;
      const rows = await slotQuery();
      this.reset();
      for (const row of rows) this.set({ machine: row.machine }, row.slots);
    },
  });

  const telemetry: WorkerTelemetry = {
    runStarted: (machine) => runsStarted.inc({ machine }),
    runFinished: (outcome) => runsFinished.inc({ outcome }),
    metricsCommitted: ({ points, skippedLines, lagSeconds }) => {
      pointsIngested.inc(points);
      if (skippedLines > 0) linesSkipped.inc(skippedLines);
      ingestLag.observe(lagSeconds);
    },
    machineProbed: (machine, up) => reachable.set({ machine }, up ? 1 : 0),
    machineDropped: (machine) => reachable.remove({ machine }),
    trainerLaunched: (machine, seconds) => launchLatency.observe({ machine }, seconds),
    trainerStopped: (machine, seconds) => stopLatency.observe({ machine }, seconds),
  };
  return { registry, telemetry };
}
