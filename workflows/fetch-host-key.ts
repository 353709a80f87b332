// The "fetch and confirm" step's host-key read, as a short workflow so that it runs in a
// worker (the web server may not reach machines): on an existing machine's own queue, so
// a worker that serves it reads it, or on the control queue, which every worker polls,
// for an address no machine has yet.
import { proxyActivities } from '@temporalio/workflow';
import type { FetchedHostKey, HostKeyActivities } from '../activities/types.js';
import { controlTaskQueue, machineTaskQueue } from './messages.js';

export interface FetchHostKeyInput {
  /** host or host:port, validated by the caller. */
  address: string;
  /** The machine whose form asks (its queue), or null for a machine not yet added (the control queue). */
  machineId: number | null;
  /** How long the SSH handshake may take before the address counts as unreachable. */
  timeoutMs: number;
  /** The installation whose queues its workers poll (workflows/messages.ts). */
  installation: string;
}

/** With no worker polling the queue the activity fails this soon, instead of waiting. */
const HOST_KEY_SCHEDULE_TO_START_MS = 15_000;

export async function fetchHostKeyWorkflow(input: FetchHostKeyInput): Promise<FetchedHostKey> {
  const { fetchHostKey } = proxyActivities<HostKeyActivities>({
    taskQueue:
      input.machineId === null
        ? controlTaskQueue(input.installation)
        : machineTaskQueue(input.machineId, input.installation),
    scheduleToStartTimeout: HOST_KEY_SCHEDULE_TO_START_MS,
    // The handshake has its own timeout; this only bounds a worker that hangs.
    startToCloseTimeout: input.timeoutMs + 5_000,
    // An operator waits on the form: one attempt, and the reason if it fails.
    retry: { maximumAttempts: 1 },
  });
  return fetchHostKey(input.address, { timeoutMs: input.timeoutMs });
}
