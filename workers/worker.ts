// One worker process: polls its installation's control queue (workflows and database
// activities) and the queue of every machine it serves (workflows/messages.ts), and the
// queues from before installation ids while workflows may remain on them. Machines added or removed while it runs are
// picked up by a reconcile loop, without a restart. It announces its build id to Temporal
// and, when asked, serves its own Prometheus metrics and the SDK's (docs/operations.md).
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type postgres from 'postgres';
import { asc } from 'drizzle-orm';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from '../db/client.js';
import { machines } from '../db/schema.js';
import { connectionOptions, explainConnectError, type TemporalConnectionSettings } from '../lib/temporal.js';
import { createControlActivities } from '../activities/control.js';
import { createHostKeyActivities } from '../activities/host-key.js';
import { createMachineActivities, type MachineRow } from '../activities/machine.js';
import { createNotificationActivities } from '../activities/notify.js';
import type { DeliveryRetry } from '../activities/types.js';
import { createNotifier } from '../services/notifications.js';
import { DEPLOYMENT_NAME, resolveBuildId } from '../lib/build-id.js';
import { NO_TELEMETRY, type WorkerTelemetry } from '../telemetry/hooks.js';
import { serveMetrics, type MetricsServer } from '../telemetry/serve.js';
import { createWorkerMetrics } from '../telemetry/worker-metrics.js';
import { installationOf, legacyQueuesInUse } from '../services/installation.js';
import { controlTaskQueue, LEGACY_CONTROL_TASK_QUEUE, machineTaskQueue } from '../workflows/messages.js';
import { startHousekeeping } from './housekeeping.js';
import { freshPass } from '../lib/fresh-pass.js';
import { reconcileInstallation, reportLines } from './reconcile.js';
import { createWorkflowReconciler } from './workflow-reconciler.js';

export const WORKFLOWS_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'workflows', 'index.ts');

export interface WorkerDeps {
  db: Db;
  sql: postgres.Sql;
  temporalAddress: string;
  /** TLS, API key and headers for an outside Temporal (lib/config.ts); none for a dev server. */
  temporalConnection?: TemporalConnectionSettings;
  namespace: string;
  /** Serve the built-in `local` machine (TRAINYARD_LOCAL_MACHINE). */
  serveLocalMachine: boolean;
  dataDir: string;
  secret: string;
  keysDir: string | null;
  reconcileIntervalMs?: number;
  probeIntervalMs?: number;
  /** How often processes holding a run or a slot have their workflow described (workers/workflow-reconciler.ts). */
  workflowSweepMs?: number;
  /** Tests and benchmarks pass a prebuilt bundle to skip bundling per worker. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  log?: (line: string) => void;
  /** TRAINYARD_BUILD_ID; unset → `<package version>+<git commit>` (lib/build-id.ts). */
  buildId?: string | null;
  /** host:port to serve this worker's `/metrics` on (TRAINYARD_WORKER_METRICS_ADDRESS); unset = none. */
  metricsAddress?: string | null;
  /**
   * host:port the Temporal SDK serves its metrics on (TRAINYARD_WORKER_SDK_METRICS_ADDRESS).
   * Takes effect only in the process's first startWorkers, which installs the SDK runtime.
   */
  sdkMetricsAddress?: string | null;
  /** How notification deliveries retry (TRAINYARD_NOTIFY_RETRY_INITIAL_MS); tests shorten it. */
  notifyRetry?: Partial<DeliveryRetry>;
  /** Run `trainyard reconcile` once the queues are polled (workers/reconcile.ts); on unless false. */
  reconcileAtStart?: boolean;
}

export interface RunningWorkers {
  /** The build id this process's workers announce to Temporal. */
  buildId: string;
  /** The installation whose queues it polls (services/installation.ts). */
  installation: string;
  /** The task queues polled now (control, then machines). */
  queues(): string[];
  /** Where this process's `/metrics` listens (host:port), or null. */
  metricsAddress: string | null;
  /** Graceful: in-flight activities let go of their trainers, which keep running. */
  shutdown(): Promise<void>;
  /** Machine ids whose queues this process polls now. */
  machineIds(): number[];
  /** Resolves after a pass that started after the call: it sees the database as it was then. */
  reconcile(): Promise<void>;
}

interface PollingWorker {
  worker: Worker;
  running: Promise<void>;
}

interface MachineWorker {
  /** One per queue: the installation's, and the legacy one while it is in use. */
  workers: PollingWorker[];
  fingerprint: string;
  /** Probes now and reaps trainers runs may have left (a workflow terminated by hand). */
  probeSoon(): void;
  dispose(): Promise<void>;
}

/** How long after a shutdown begins a worker stops even if an activity has not ended. */
const SHUTDOWN_FORCE_TIME = '30s';

/** The bundler's progress is not news; its warnings and errors are. */
const QUIET_BUNDLER = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn: (message: string) => console.warn(`[temporal] ${message}`),
  error: (message: string) => console.error(`[temporal] ${message}`),
};

/** How long a shutdown waits for a reconcile pass under way. */
const RECONCILE_SHUTDOWN_WAIT_MS = 10_000;

let runtimeInstalled = false;
function installRuntime(sdkMetricsAddress: string | null): void {
  if (runtimeInstalled) {
    if (sdkMetricsAddress) throw new Error('The Temporal runtime is installed already; its metrics address is fixed.');
    return;
  }
  runtimeInstalled = true;
  // Keep the SDK's own logs to warnings: heartbeats and polls are not news.
  try {
    // shutdownSignals: [] — the host process decides the order of shutdown (worker before server).
    Runtime.install({
      shutdownSignals: [],
      ...(sdkMetricsAddress
        ? {
            telemetryOptions: {
              metrics: { prometheus: { bindAddress: sdkMetricsAddress, useSecondsForDurations: true } },
            },
          }
        : {}),
      logger: new (class {
        log() {}
        trace() {}
        debug() {}
        info() {}
        warn(message: string, meta?: unknown) {
          // Machine queues carry activities only; that is by design, not news.
          if (message.startsWith('No workflows registered')) return;
          // A refused delivery is retried for hours and each attempt is in the delivery log: not a warning each.
          if ((meta as { activityType?: string } | undefined)?.activityType === 'deliverNotification') return;
          console.warn(`[temporal] ${message}`, meta ?? '');
        }
        error(message: string, meta?: unknown) {
          console.error(`[temporal] ${message}`, meta ?? '');
        }
      })(),
    });
  } catch (error) {
    // Already installed by the host process (tests); a metrics endpoint asked for must not go missing unseen.
    if (sdkMetricsAddress) throw error;
  }
}

export async function startWorkers(deps: WorkerDeps): Promise<RunningWorkers> {
  installRuntime(deps.sdkMetricsAddress ?? null);
  const log = deps.log ?? ((line: string) => console.log(line));
  const buildId = resolveBuildId(deps.buildId ?? null);
  // Unversioned (useWorkerVersioning false): tasks route as before; the build id is
  // recorded in Temporal (pollers, workflow task events) to tell deploys apart.
  const workerDeploymentOptions = {
    version: { deploymentName: DEPLOYMENT_NAME, buildId },
    useWorkerVersioning: false,
  } as const;
  let metricsServer: MetricsServer | null = null;
  let telemetry: WorkerTelemetry = NO_TELEMETRY;
  if (deps.metricsAddress) {
    const metrics = createWorkerMetrics({ db: deps.db });
    metricsServer = await serveMetrics(metrics.registry, deps.metricsAddress);
    telemetry = metrics.telemetry;
  }
  const connection = await NativeConnection.connect(
    connectionOptions(deps.temporalAddress, deps.temporalConnection),
  ).catch(async (error: unknown) => {
    await metricsServer?.close();
    throw await explainConnectError(error, deps.temporalAddress, deps.temporalConnection);
  });
  const client = new Client({ connection, namespace: deps.namespace });
  const notifier = createNotifier({ db: deps.db, client, ...(deps.notifyRetry ? { retry: deps.notifyRetry } : {}) });
  const installation = await installationOf(deps.db);
  // On every queue: a new machine's address is read by any worker, an existing one's by a worker serving it.
  const hostKey = createHostKeyActivities();
  const controlActivities = {
    ...createControlActivities({ db: deps.db, telemetry, notifier }),
    ...createNotificationActivities({ db: deps.db, secret: deps.secret }),
    ...hostKey,
  };
  // Bundled once, for the installation's control queue and the legacy one.
  let bundle: Promise<NonNullable<WorkerOptions['workflowBundle']>> | null = null;
  const workflowBundle = () =>
    deps.workflowBundle
      ? Promise.resolve(deps.workflowBundle)
      : (bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: QUIET_BUNDLER }));
  async function startControl(taskQueue: string): Promise<PollingWorker> {
    const worker = await Worker.create({
      connection,
      namespace: deps.namespace,
      taskQueue,
      workerDeploymentOptions,
      workflowBundle: await workflowBundle(),
      activities: controlActivities,
      // Every queued run holds one acquireSlot activity that mostly sleeps; with the default
      // cap (100) a few hundred queued runs would starve the short status writes.
      maxConcurrentActivityTaskExecutions: 5000,
      maxCachedWorkflows: 2000,
      shutdownGraceTime: '5s',
      // An activity that does not end on cancellation must not hold a shutdown for ever:
      // what it was doing, the next attempt on another worker picks up.
      shutdownForceTime: SHUTDOWN_FORCE_TIME,
    });
    return { worker, running: worker.run() };
  }
  const control = new Map<string, PollingWorker>();
  control.set(controlTaskQueue(installation), await startControl(controlTaskQueue(installation)));
  async function stopPolling(entry: PollingWorker): Promise<void> {
    entry.worker.shutdown();
    await entry.running.catch(() => undefined);
  }

  const perMachine = new Map<number, MachineWorker>();
  let closed = false;

  let legacy = false;
  const fingerprintOf = (m: MachineRow) =>
    JSON.stringify([
      legacy,
      m.kind,
      m.address,
      m.sshUser,
      m.privateKeyEncrypted,
      m.privateKeyPath,
      m.hostKeyFingerprint,
      m.lostTimeoutSeconds,
      m.gpus,
      m.slots,
    ]);

  async function startMachine(machine: MachineRow): Promise<MachineWorker> {
    const made = createMachineActivities({
      db: deps.db,
      sql: deps.sql,
      machine,
      dataDir: deps.dataDir,
      secret: deps.secret,
      keysDir: deps.keysDir,
      telemetry,
      notifier,
    });
    const queues = [
      machineTaskQueue(machine.id, installation),
      ...(legacy ? [machineTaskQueue(machine.id, null)] : []),
    ];
    const workers: PollingWorker[] = [];
    for (const taskQueue of queues) {
      const worker = await Worker.create({
        connection,
        namespace: deps.namespace,
        taskQueue,
        workerDeploymentOptions,
        activities: { ...made.activities, ...hostKey },
        // Activities that see shutdown let go of their trainers; the next attempt re-attaches.
        shutdownGraceTime: '3s',
        shutdownForceTime: SHUTDOWN_FORCE_TIME,
        maxConcurrentActivityTaskExecutions: 1000,
      });
      workers.push({ worker, running: worker.run() });
    }
    const housekeeping = startHousekeeping({
      db: deps.db,
      machine,
      probe: made.activities.probeMachine,
      executor: made.executor,
      intervalMs: deps.probeIntervalMs ?? 60_000,
      telemetry,
    });
    return {
      workers,
      fingerprint: fingerprintOf(machine),
      probeSoon: housekeeping.probeSoon,
      dispose: async () => {
        housekeeping.stop();
        await made.dispose();
      },
    };
  }

  async function stopMachine(id: number): Promise<void> {
    const entry = perMachine.get(id);
    if (!entry) return;
    perMachine.delete(id);
    await Promise.all(entry.workers.map(stopPolling));
    await entry.dispose();
  }

  async function reconcileOnce(): Promise<void> {
    legacy = await legacyQueuesInUse(deps.db);
    const legacyControl = control.get(LEGACY_CONTROL_TASK_QUEUE);
    if (legacy && !legacyControl && !closed) {
      control.set(LEGACY_CONTROL_TASK_QUEUE, await startControl(LEGACY_CONTROL_TASK_QUEUE));
      log(`worker: polling ${LEGACY_CONTROL_TASK_QUEUE} too, for workflows started before installation ids`);
    } else if (!legacy && legacyControl) {
      control.delete(LEGACY_CONTROL_TASK_QUEUE);
      await stopPolling(legacyControl);
      log(`worker: no workflow is left on ${LEGACY_CONTROL_TASK_QUEUE}; no longer polling it`);
    }
    const rows = await deps.db.select().from(machines).orderBy(asc(machines.id));
    const wanted = rows.filter((m) => (m.kind === 'local' ? deps.serveLocalMachine : true));
    const wantedIds = new Set(wanted.map((m) => m.id));
    for (const id of [...perMachine.keys()]) {
      if (!wantedIds.has(id)) {
        log(`worker: machine ${id} removed; no longer polling ${machineTaskQueue(id, installation)}`);
        await stopMachine(id);
      }
    }
    for (const machine of wanted) {
      const current = perMachine.get(machine.id);
      if (current && current.fingerprint === fingerprintOf(machine)) continue;
      // Connection settings changed: a fresh worker with fresh executors.
      if (current) await stopMachine(machine.id);
      if (closed) return;
      perMachine.set(machine.id, await startMachine(machine));
      if (!current) log(`worker: polling ${machineTaskQueue(machine.id, installation)} for machine "${machine.name}"`);
    }
  }
  const workflows = createWorkflowReconciler({
    db: deps.db,
    client,
    installation,
    reap: (ids) => ids.forEach((id) => perMachine.get(id)?.probeSoon()),
    log,
    ...(deps.workflowSweepMs !== undefined ? { sweepEveryMs: deps.workflowSweepMs } : {}),
  });
  // A caller gets a pass that started after its call (lib/fresh-pass.ts): one under way may
  // have read the database before the caller changed it.
  const reconcile = freshPass(async () => {
    if (closed) return;
    await reconcileOnce()
      // Never fatal: a Temporal hiccup here must not stop the machines' reconcile or the start.
      .then(() =>
        closed
          ? undefined
          : workflows
              .pass()
              .catch((error: unknown) => log(`worker: workflow reconcile failed: ${(error as Error).message}`)),
      );
  });

  await reconcile();
  // In the background: the queues are polled already, and a pass over many processes takes a while.
  const startPass =
    deps.reconcileAtStart === false
      ? Promise.resolve()
      : reconcileInstallation({ db: deps.db, client }, { checkRows: false, trainerWaitMs: 0 })
          .then((report) => {
            if (report.restored.length || report.orphans.length || report.legacyQueues === 'retired')
              for (const line of reportLines(report)) log(`worker: reconcile: ${line}`);
          })
          .catch((error: unknown) => log(`worker: reconcile at start failed: ${(error as Error).message}`));
  const timer = setInterval(() => {
    // A tick skips while a pass runs: queueing one behind every slow pass would keep the
    // database and Temporal busy with passes back to back.
    if (reconcile.current()) return;
    reconcile().catch((error: unknown) => log(`worker: reconcile failed: ${(error as Error).message}`));
  }, deps.reconcileIntervalMs ?? 5000);
  timer.unref();

  return {
    buildId,
    installation,
    queues: () => [
      ...control.keys(),
      ...[...perMachine.values()].flatMap((m) => m.workers.map((w) => w.worker.options.taskQueue)),
    ],
    metricsAddress: metricsServer?.address ?? null,
    machineIds: () => [...perMachine.keys()],
    reconcile: () => reconcile(),
    async shutdown() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      // A reconcile under way finishes its step, but a slow Temporal (the workflow
      // reconciler's queries) must not hold the shutdown: what it did not reach, the next
      // worker's pass does.
      await Promise.race([
        Promise.all([reconcile.current()?.catch(() => undefined), startPass]),
        new Promise((resolve) => setTimeout(resolve, RECONCILE_SHUTDOWN_WAIT_MS).unref()),
      ]);
      await Promise.all([...perMachine.keys()].map((id) => stopMachine(id)));
      await Promise.all([...control.values()].map(stopPolling));
      await connection.close();
      await metricsServer?.close();
    },
  };
}
