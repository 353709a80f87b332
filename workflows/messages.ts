// Names shared by the client side (API, services) and the workflow: ids, task queues,
// updates and queries are defined once here and imported everywhere.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ProcessStatus } from '../domain/status.js';

export const CONTROL_TASK_QUEUE = 'trainyard-control';

/** Search attributes on every training-process workflow, for the Temporal UI (registered at server start). */
export const SEARCH_KEYS = {
  processId: defineSearchAttributeKey('TrainyardProcessId', SearchAttributeType.KEYWORD),
  templateId: defineSearchAttributeKey('TrainyardTemplateId', SearchAttributeType.KEYWORD),
  machineId: defineSearchAttributeKey('TrainyardMachineId', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('TrainyardStatus', SearchAttributeType.KEYWORD),
};

export function machineTaskQueue(machineId: number): string {
  return `machine-${machineId}`;
}

export function trainingProcessWorkflowId(processId: number): string {
  return `training-process-${processId}`;
}

export function probeMachineWorkflowId(machineId: number, nonce: string): string {
  return `probe-machine-${machineId}-${nonce}`;
}

export function fetchHostKeyWorkflowId(nonce: string): string {
  return `fetch-host-key-${nonce}`;
}

export interface ProcessSnapshot {
  processId: number;
  status: ProcessStatus;
  /** Grows with every recorded status change; the DB mirror only accepts a newer one. */
  statusVersion: number;
  statusBeforeDisable: ProcessStatus | null;
  runNumber: number;
  runId: number | null;
  lastError: string | null;
  /** 1-based within the current restart chain; a user's start begins a new chain. */
  attempt: number;
}

export interface ActionResult {
  /** The status right after the action was accepted (e.g. `queued`, `stopping`). */
  status: ProcessStatus;
}

export interface DeleteOptions {
  /** Delete even when the machine cannot be reached; the trainer it may have left is recorded. */
  force?: boolean;
}

export const startUpdate = defineUpdate<ActionResult>('start');
export const stopUpdate = defineUpdate<ActionResult>('stop');
export const disableUpdate = defineUpdate<ActionResult>('disable');
export const enableUpdate = defineUpdate<ActionResult>('enable');
export const deleteUpdate = defineUpdate<ActionResult, [DeleteOptions]>('delete');
export const snapshotQuery = defineQuery<ProcessSnapshot>('snapshot');
