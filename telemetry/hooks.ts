// What a worker's activities and housekeeping report as they go: small hooks handed to
// their factories, so code under test passes NO_TELEMETRY (or its own fake) and nothing
// reaches for a global registry. telemetry/worker-metrics.ts backs them with prom-client.

export interface MetricsCommit {
  /** Points the commit stored. */
  points: number;
  /** Lines the commit passed over: malformed ones and ones over the length limit. */
  skippedLines: number;
  /** From when the worker first read the batch's bytes off the file to the commit standing. */
  lagSeconds: number;
}

export interface WorkerTelemetry {
  /** A trainer was launched for a run on `machine`. */
  runStarted(machine: string): void;
  /** A run was finished with `outcome`, its process status (completed, failed, stopped, …). */
  runFinished(outcome: string): void;
  /** A batch of metric lines was committed. */
  metricsCommitted(commit: MetricsCommit): void;
  /** A probe of `machine` found it answering or not. */
  machineProbed(machine: string, reachable: boolean): void;
  /** This worker stopped serving `machine` (removed, or its worker restarted). */
  machineDropped(machine: string): void;
  /** From the launch activity's start to the trainer running. */
  trainerLaunched(machine: string, seconds: number): void;
  /** From the first TERM sent to the trainer to its process group gone. */
  trainerStopped(machine: string, seconds: number): void;
}

export const NO_TELEMETRY: WorkerTelemetry = Object.freeze({
  runStarted() {},
  runFinished() {},
  metricsCommitted() {},
  machineProbed() {},
  machineDropped() {},
  trainerLaunched() {},
  trainerStopped() {},
});

/** Seconds since `startedAt` (a `performance.now()` reading). */
export const secondsSince = (startedAt: number): number => (performance.now() - startedAt) / 1000;
