// The "fetch and confirm" step of a machine's form: the host key fingerprint a server
// presents, for an operator to compare with `ssh-keygen -lf` before pinning it. A worker
// reads it (workflows/fetch-host-key.ts), since in production the web server may not
// reach machines; with no worker running the caller hears so within HOST_KEY_ANSWER_MS.
import crypto from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure, TimeoutFailure, TimeoutType } from '@temporalio/common';
import type { FetchedHostKey } from '../activities/types.js';
import type { Db } from '../db/client.js';
import { FAILURE } from '../domain/failures.js';
import type { fetchHostKeyWorkflow } from '../workflows/fetch-host-key.js';
import { controlTaskQueue, fetchHostKeyWorkflowId } from '../workflows/messages.js';
import { installationOf } from './installation.js';
import { invalid, ServiceError } from './errors.js';
import { getMachine, validAddress } from './machines.js';

/**
 * How long the caller waits for a worker's answer. Past the activity's 15 s schedule-to-start
 * (no worker on the machine's queue), and what a caller waits when no worker polls the
 * control queue at all, so the workflow never starts.
 */
export const HOST_KEY_ANSWER_MS = 20_000;

export interface HostKeyOptions {
  /** The machine whose form asks: read by a worker that serves it. Absent for a machine not yet added. */
  machineId?: number | null;
  /** How long the SSH handshake may take; at most HOST_KEY_ANSWER_MS less the time to reach a worker. */
  timeoutMs?: number;
}

/** The first failure of `type` in an error's cause chain. */
function causeOf<T>(error: unknown, type: abstract new (...args: never[]) => T): T | null {
  for (let cause = error; cause; cause = (cause as { cause?: unknown }).cause) if (cause instanceof type) return cause;
  return null;
}

export async function fetchHostKey(
  deps: { db: Db; client: Client },
  address: unknown,
  options: HostKeyOptions = {},
): Promise<FetchedHostKey & { address: string }> {
  const valid = validAddress(address);
  // The built-in machine has no address of its own to read: any worker will do.
  const machine = options.machineId != null ? await getMachine(deps.db, options.machineId) : null;
  const served = machine?.kind === 'ssh' ? machine : null;
  const installation = await installationOf(deps.db);
  try {
    const found = await deps.client.workflow.execute<typeof fetchHostKeyWorkflow>('fetchHostKeyWorkflow', {
      taskQueue: controlTaskQueue(installation),
      workflowId: fetchHostKeyWorkflowId(installation, crypto.randomBytes(6).toString('hex')),
      args: [{ address: valid, machineId: served?.id ?? null, timeoutMs: options.timeoutMs ?? 10_000, installation }],
      workflowExecutionTimeout: HOST_KEY_ANSWER_MS,
    });
    return { address: valid, ...found };
  } catch (error) {
    if (!(error instanceof WorkflowFailedError)) {
      throw new ServiceError('unavailable', {
        en: `Could not ask a worker to read the host key of ${valid}: ${(error as Error).message}`,
        ru: `Не удалось поручить воркеру чтение ключа хоста ${valid}: ${(error as Error).message}`,
      });
    }
    const failure = causeOf(error, ApplicationFailure);
    if (failure?.type === FAILURE.hostKeyUnreadable) {
      throw invalid('address', {
        en: `Cannot read the host key of ${valid}: ${failure.message}`,
        ru: `Не удалось прочитать ключ хоста ${valid}: ${failure.message}`,
      });
    }
    const timeout = causeOf(error, TimeoutFailure);
    if (timeout?.timeoutType === TimeoutType.SCHEDULE_TO_START && served) {
      throw new ServiceError('unavailable', {
        en: `No worker serves machine "${served.name}", so the host key of ${valid} was not read: start a worker (npm run trainyard -- worker) that can reach it.`,
        ru: `Машину «${served.name}» не обслуживает ни один воркер, ключ хоста ${valid} не прочитан: запустите воркер (npm run trainyard -- worker), которому она доступна.`,
      });
    }
    // The workflow's own deadline: no worker took it (or the activity) in time.
    if (timeout) {
      const seconds = HOST_KEY_ANSWER_MS / 1000;
      throw new ServiceError('unavailable', {
        en: `No worker answered within ${seconds} s, so the host key of ${valid} was not read: start a worker (npm run trainyard -- worker; npm start runs one).`,
        ru: `Ни один воркер не ответил за ${seconds} с, ключ хоста ${valid} не прочитан: запустите воркер (npm run trainyard -- worker; npm start запускает его сам).`,
      });
    }
    throw new ServiceError('unavailable', {
      en: `Reading the host key of ${valid} failed: ${error.cause?.message ?? error.message}`,
      ru: `Чтение ключа хоста ${valid} не удалось: ${error.cause?.message ?? error.message}`,
    });
  }
}
