// The workflow tier's harness: one Temporal server per test file, the real workflow bundle,
// fake activities. Every test gets its own workflow task queue, machine queue (so its own
// machine activities worker), process id and workflow id; the control queue's name is fixed
// in the workflow, so one control worker per file serves every test, its fakes routed by
// process id.
//
// Not time-skipping: TestWorkflowEnvironment.createTimeSkipping() needs Temporal's Java
// test server, which the SDK downloads at run time and no package registry ships; this
// machine and CI reach package registries only. The tier runs on the Temporal CLI's dev
// server (createLocal, the binary ensureTemporalCli finds or builds), and needs no timer
// skipped: the fakes answer at once or when the test lets them, and nothing the tests reach
// waits on a workflow timer or an activity retry.
import { randomBytes } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { ProcessStatus } from '../../domain/status.js';
import { ensureTemporalCli } from '../../lib/temporal-cli.js';
import {
  controlTaskQueue,
  machineTaskQueue,
  SEARCH_KEYS,
  snapshotQuery,
  type ProcessSnapshot,
} from '../../workflows/messages.js';
import type { TrainingProcessInput, trainingProcessWorkflow } from '../../workflows/training-process.js';
import { WORKFLOWS_PATH } from '../../workers/worker.js';
import { FakeFleet, type FakeScript } from './fake-activities.js';

/** The installation id the harness's workflows carry: their activities go to its queues. */
const HARNESS_INSTALLATION = 'harness';

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error };

export interface TestProcess {
  processId: number;
  handle: WorkflowHandleWithFirstExecutionRunId<typeof trainingProcessWorkflow>;
  fleet: FakeFleet;
  /** Waits until the workflow has mirrored `status` (the last record), and returns the snapshot. */
  recorded(status: ProcessStatus): Promise<ProcessSnapshot>;
}

export class WorkflowHarness {
  // Process and machine ids unique across the file (and, with the random base, across runs).
  private nextId = 1000 + (randomBytes(2).readUInt16BE() % 1000) * 1000;

  private constructor(
    readonly fleet: FakeFleet,
    readonly env: TestWorkflowEnvironment,
    private readonly bundle: WorkflowBundleWithSourceMap,
    private readonly controlWorker: Worker,
    private readonly controlRunning: Promise<void>,
  ) {}

  static async start(): Promise<WorkflowHarness> {
    const cli = await ensureTemporalCli();
    const [env, bundle] = await Promise.all([
      TestWorkflowEnvironment.createLocal({
        server: {
          executable: { type: 'existing-path', path: cli.path },
          searchAttributes: Object.values(SEARCH_KEYS),
          ui: false,
        },
      }),
      bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quiet }),
    ]);
    const fleet = new FakeFleet();
    const controlWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: controlTaskQueue(HARNESS_INSTALLATION),
      activities: fleet.controlActivities(),
    });
    return new WorkflowHarness(fleet, env, bundle, controlWorker, controlWorker.run());
  }

  async stop(): Promise<void> {
    this.controlWorker.shutdown();
    await this.controlRunning;
    await this.env.teardown();
  }

  /**
   * Starts a training-process workflow for a new process scripted with `script`, runs `body`
   * against it with the test's own workers, and ends the workflow if it is still running.
   */
  async withProcess(
    testName: string,
    script: Partial<FakeScript>,
    body: (process: TestProcess) => Promise<void>,
    carried?: TrainingProcessInput['carried'],
    options: { start?: boolean } = {},
  ): Promise<void> {
    const processId = (this.nextId += 1);
    const machineId = processId;
    const taskQueue = `workflow-test-${testName.replace(/[^a-z0-9]+/gi, '-')}-${processId}`;
    this.fleet.script(processId, script);
    const [workflowWorker, machineWorker] = await Promise.all([
      // debugMode runs the workflow in this thread: a worker starts in milliseconds instead of
      // the second a workflow thread takes to load the bundle.
      // The control activities too: the workflow runs its database steps as local activities, in this worker.
      Worker.create({
        connection: this.env.nativeConnection,
        taskQueue,
        workflowBundle: this.bundle,
        debugMode: true,
        activities: this.fleet.controlActivities(),
      }),
      Worker.create({
        connection: this.env.nativeConnection,
        taskQueue: machineTaskQueue(machineId, HARNESS_INSTALLATION),
        activities: this.fleet.machineActivities(),
      }),
    ]);
    const handle = await this.env.client.workflow.start<typeof trainingProcessWorkflow>('trainingProcessWorkflow', {
      taskQueue,
      workflowId: `trainyard-${HARNESS_INSTALLATION}-process-${processId}-${randomBytes(3).toString('hex')}`,
      args: [
        {
          processId,
          templateId: 1,
          machineId,
          installation: HARNESS_INSTALLATION,
          ...(carried ? { carried } : {}),
          ...options,
        },
      ],
    });
    const fleet = this.fleet;
    const recorded = async (status: ProcessStatus): Promise<ProcessSnapshot> => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        if (fleet.lastRecord(processId)?.status === status) return handle.query(snapshotQuery);
        if (Date.now() > deadline)
          throw new Error(
            `process ${processId} never recorded ${status}; recorded: ${fleet.statuses(processId).join(', ') || 'nothing'}`,
          );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await workflowWorker.runUntil(
      machineWorker.runUntil(async () => {
        try {
          await body({ processId, handle, fleet, recorded });
        } finally {
          const { status } = await this.env.client.workflow.getHandle(handle.workflowId).describe();
          if (status.name === 'RUNNING')
            await this.env.client.workflow.getHandle(handle.workflowId).terminate('test over');
        }
      }),
    );
  }
}
