// Names shared by the client side (API, services) and the workflow: ids, task queues,
// updates and queries are defined once here and imported everywhere.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ProcessStatus } from '../domain/status.js';

/**
 * Task queues and workflow ids carry the installation id (app_state, made by the first
 * migration that needs it), so installations sharing a namespace never take each other's
 * tasks or ids (docs/design.md, "Workflow ids and task queues"). Workflows started before
 * installation ids have none in their input and keep the queues they began on: a worker
 * polls those while such processes remain.
 */
export const LEGACY_CONTROL_TASK_QUEUE = 'trainyard-control';

export function controlTaskQueue(installation: string | null | undefined): string {
  return installation ? `trainyard-${installation}-control` : LEGACY_CONTROL_TASK_QUEUE;
}

/** Search attributes on every training-process workflow, for the Temporal UI (registered at server start). */
export const SEARCH_KEYS = {
  processId: defineSearchAttributeKey('TrainyardProcessId', SearchAttributeType.KEYWORD),
  templateId: defineSearchAttributeKey('TrainyardTemplateId', SearchAttributeType.KEYWORD),
  machineId: defineSearchAttributeKey('TrainyardMachineId', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('TrainyardStatus', SearchAttributeType.KEYWORD),
};

export function machineTaskQueue(machineId: number, installation: string | null | undefined): string {
  return installation ? `trainyard-${installation}-machine-${machineId}` : `machine-${machineId}`;
}

/**
 * Every training-process workflow of an installation begins with this; the rest is the
 * process id and its key (the trigger in db/migrations/0012_workflow_ids.sql names it).
 */
export function processWorkflowPrefix(installation: string): string {
  return `trainyard-${installation}-process-`;
}

/**
 * The process key part of a workflow id (its last 12 hex digits), or null for an id from
 * before installation ids. Run directories carry it (activities/launch.ts), so a workflow's
 * trainers can be found on the machine without the database (activities/strays.ts).
 */
export function processKeyOf(workflowId: string): string | null {
  return /^trainyard-[0-9a-f]+-process-\d+-([0-9a-f]{12})$/.exec(workflowId)?.[1] ?? null;
}

/** The id processes made before installation ids keep (`training-process-<id>`). */
export const LEGACY_PROCESS_WORKFLOW_ID = /^training-process-(\d+)$/;

export function probeMachineWorkflowId(installation: string, machineId: number, nonce: string): string {
  return `trainyard-${installation}-probe-machine-${machineId}-${nonce}`;
}

export function stopTrainersWorkflowId(installation: string, key: string, nonce: string): string {
  return `trainyard-${installation}-stop-trainers-${key}-${nonce}`;
}

export function fetchHostKeyWorkflowId(installation: string, nonce: string): string {
  return `trainyard-${installation}-fetch-host-key-${nonce}`;
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
