// The Grafana dashboard (docker/grafana/trainyard.json) and the alert rules
// (docker/prometheus/alerts.yml) name only metrics the code's registries define, and the
// worker's hooks land in the metrics those files read.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createWebMetrics } from '../../telemetry/web-metrics.js';
import { createWorkerMetrics } from '../../telemetry/worker-metrics.js';

const dashboard = JSON.parse(readFileSync('docker/grafana/trainyard.json', 'utf8')) as {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
};
const alerts = parse(readFileSync('docker/prometheus/alerts.yml', 'utf8')) as {
  groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
};

const PROMQL_WORDS = new Set([
  'sum',
  'min',
  'max',
  'by',
  'rate',
  'increase',
  'histogram_quantile',
  'le',
  'status',
  'machine',
  'outcome',
  'activity_type',
  'worker_type',
  'task_queue',
  'job',
  'instance',
]);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords or label names. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""').replace(/\[[^\]]*\]/g, '');
  const names = withoutStrings.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return names.filter((name) => !PROMQL_WORDS.has(name));
}

/** A histogram's series carry suffixes the registry's metric name does not. */
const baseName = (name: string) => name.replace(/_(bucket|sum|count)$/, '');

async function registeredNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [
    createWebMetrics({ statusCounts: null }).registry,
    createWorkerMetrics({ db: null }).registry,
  ])
    for (const metric of await registry.getMetricsAsJSON()) names.add(metric.name);
  return names;
}

const expressions = [
  ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => ({ where: panel.title, expr: target.expr }))),
  ...alerts.groups.flatMap((group) => group.rules.map((rule) => ({ where: rule.alert, expr: rule.expr }))),
];

describe('the dashboard and the alert rules', () => {
  it('name only metrics the web and worker registries define (temporal_* are the SDK’s, `up` Prometheus’)', async () => {
    const known = await registeredNames();
    const unknown = expressions.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !name.startsWith('temporal_') && name !== 'up' && !known.has(baseName(name)))
        .map((name) => `${where}: ${name}`),
    );
    expect(expressions.length).toBeGreaterThan(10);
    expect(unknown).toEqual([]);
  });

  it('cover every metric the app defines', async () => {
    const used = new Set(expressions.flatMap(({ expr }) => metricNames(expr).map(baseName)));
    const unused = [...(await registeredNames())].filter((name) => !used.has(name));
    expect(unused).toEqual([]);
  });
});

describe('the worker telemetry hooks', () => {
  it('land in the metrics operators scrape', async () => {
    const { registry, telemetry } = createWorkerMetrics({ db: null });
    telemetry.runStarted('gpu-1');
    telemetry.runFinished('completed');
    telemetry.runFinished('failed');
    telemetry.metricsCommitted({ points: 40, skippedLines: 2, lagSeconds: 0.3 });
    telemetry.metricsCommitted({ points: 2, skippedLines: 0, lagSeconds: 0.02 });
    telemetry.machineProbed('gpu-1', true);
    telemetry.machineProbed('gpu-2', false);
    telemetry.trainerLaunched('gpu-1', 0.8);
    telemetry.trainerStopped('gpu-1', 4);
    const text = await registry.metrics();
    expect(text).toContain('trainyard_runs_started_total{machine="gpu-1"} 1');
    expect(text).toContain('trainyard_runs_finished_total{outcome="completed"} 1');
    expect(text).toContain('trainyard_runs_finished_total{outcome="failed"} 1');
    expect(text).toContain('trainyard_metric_points_ingested_total 42');
    expect(text).toContain('trainyard_metric_lines_skipped_total 2');
    expect(text).toContain('trainyard_metric_ingest_lag_seconds_count 2');
    expect(text).toContain('trainyard_metric_ingest_lag_seconds_bucket{le="0.05"} 1');
    expect(text).toContain('trainyard_machine_reachable{machine="gpu-1"} 1');
    expect(text).toContain('trainyard_machine_reachable{machine="gpu-2"} 0');
    expect(text).toContain('trainyard_trainer_launch_seconds_count{machine="gpu-1"} 1');
    expect(text).toContain('trainyard_trainer_stop_seconds_bucket{le="5",machine="gpu-1"} 1');
    telemetry.machineDropped('gpu-2');
    expect(await registry.metrics()).not.toContain('machine="gpu-2"');
  });

  it('count in a registry of their own: two workers in one process share nothing', async () => {
    const one = createWorkerMetrics({ db: null });
    const two = createWorkerMetrics({ db: null });
    one.telemetry.runFinished('completed');
    expect(await two.registry.metrics()).not.toContain('outcome="completed"');
  });
});
