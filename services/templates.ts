// Training templates: what to train and how (DESIGN §1, §6). Every write is validated
// here, whoever calls (form, JSON API, CLI); a failure names its field.
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processes, templates } from '../db/schema.js';
import { invalid, notFound, ServiceError } from './errors.js';
import { integer, isPlainObject, jsonValue, optionalText, pgCode, rejectUnknown, text } from './validate.js';

export const TEMPLATE_LIMITS = {
  name: 200,
  description: 10_000,
  commandBytes: 64 * 1024,
  workingDir: 4096,
  envEntries: 200,
  envValueBytes: 32 * 1024,
  paramsBytes: 64 * 1024,
  stopGraceSeconds: 3600,
  totalSteps: 2_147_483_647,
} as const;

export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface TemplateInput {
  name: string;
  description?: string | null;
  command: string;
  workingDir?: string | null;
  env?: Record<string, string>;
  params?: Record<string, unknown>;
  totalSteps?: number | null;
  stopGraceSeconds?: number;
}

export interface TemplateView {
  id: number;
  name: string;
  description: string;
  command: string;
  workingDir: string | null;
  env: Record<string, string>;
  params: Record<string, unknown>;
  totalSteps: number | null;
  stopGraceSeconds: number;
  createdAt: string;
  updatedAt: string;
}

const FIELDS = ['name', 'description', 'command', 'workingDir', 'env', 'params', 'totalSteps', 'stopGraceSeconds'] as const;

type Row = typeof templates.$inferSelect;

function toView(row: Row): TemplateView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    command: row.command,
    workingDir: row.workingDir,
    env: row.env,
    params: row.params,
    totalSteps: row.totalSteps,
    stopGraceSeconds: row.stopGraceSeconds,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function validName(value: unknown): string {
  const name = text('name', typeof value === 'string' ? value.trim() : value, { min: 1, max: TEMPLATE_LIMITS.name });
  return name;
}

function validCommand(value: unknown): string {
  const command = text('command', value, { min: 1, max: TEMPLATE_LIMITS.commandBytes, bytes: true, multiline: true });
  if (command.trim() === '') throw invalid('command', 'command must not be blank.');
  return command;
}

export function validEnv(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw invalid('env', 'env is an object of NAME: "value" strings.');
  const entries = Object.entries(value);
  if (entries.length > TEMPLATE_LIMITS.envEntries) throw invalid('env', `env may have at most ${TEMPLATE_LIMITS.envEntries} variables.`);
  const out: Record<string, string> = {};
  for (const [key, item] of entries) {
    if (!ENV_KEY.test(key)) throw invalid(`env.${key}`, `"${key}" is not a variable name: letters, digits and _, not starting with a digit.`);
    // TRAINYARD_* are the platform's own (DESIGN §5); a template may not forge them.
    if (key.toUpperCase().startsWith('TRAINYARD_')) throw invalid(`env.${key}`, `${key}: TRAINYARD_ variables are set by Trainyard itself.`);
    out[key] = text(`env.${key}`, item, { max: TEMPLATE_LIMITS.envValueBytes, bytes: true, multiline: true });
  }
  return out;
}

export function validParams(value: unknown, field = 'params'): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw invalid(field, `${field} is a JSON object of hyperparameters.`);
  const params = jsonValue(field, value) as Record<string, unknown>;
  if (Buffer.byteLength(JSON.stringify(params), 'utf8') > TEMPLATE_LIMITS.paramsBytes) {
    throw invalid(field, `${field} may be at most 64 KiB of JSON.`);
  }
  return params;
}

/** Checks a full body (create) or the fields present (patch); returns only what to write. */
export function validateTemplate(body: unknown, mode: 'create' | 'patch'): Partial<typeof templates.$inferInsert> {
  if (!isPlainObject(body)) throw invalid('body', 'A template is a JSON object.');
  rejectUnknown(body, FIELDS);
  const out: Partial<typeof templates.$inferInsert> = {};
  const has = (key: (typeof FIELDS)[number]) => Object.prototype.hasOwnProperty.call(body, key) && body[key] !== undefined;
  if (mode === 'create') {
    if (!has('name')) throw invalid('name', 'name is required.');
    if (!has('command')) throw invalid('command', 'command is required.');
  }
  if (has('name')) out.name = validName(body.name);
  if (has('description')) out.description = optionalText('description', body.description, { max: TEMPLATE_LIMITS.description, multiline: true }) ?? '';
  if (has('command')) out.command = validCommand(body.command);
  if (has('workingDir')) out.workingDir = optionalText('workingDir', body.workingDir, { max: TEMPLATE_LIMITS.workingDir });
  if (has('env')) out.env = validEnv(body.env);
  if (has('params')) out.params = validParams(body.params);
  if (has('totalSteps')) out.totalSteps = body.totalSteps === null ? null : integer('totalSteps', body.totalSteps, 1, TEMPLATE_LIMITS.totalSteps);
  if (has('stopGraceSeconds')) out.stopGraceSeconds = integer('stopGraceSeconds', body.stopGraceSeconds, 0, TEMPLATE_LIMITS.stopGraceSeconds);
  return out;
}

const nameTaken = (name: string) => new ServiceError('conflict', `A template named "${name}" already exists.`, 'name');

export async function createTemplate(db: Db, input: TemplateInput | Record<string, unknown>): Promise<TemplateView> {
  const values = validateTemplate(input, 'create') as typeof templates.$inferInsert;
  const [row] = await db.insert(templates).values(values).onConflictDoNothing({ target: templates.name }).returning();
  if (!row) throw nameTaken(values.name);
  return toView(row);
}

export async function getTemplate(db: Db, id: number): Promise<TemplateView> {
  const [row] = await db.select().from(templates).where(eq(templates.id, id));
  if (!row) throw notFound('Template', id);
  return toView(row);
}

/** Editing a template changes future runs only: each run keeps its own copy (DESIGN §4). */
export async function updateTemplate(db: Db, id: number, patch: Partial<TemplateInput> | Record<string, unknown>): Promise<TemplateView> {
  const values = validateTemplate(patch, 'patch');
  if (Object.keys(values).length === 0) return getTemplate(db, id);
  try {
    const [row] = await db
      .update(templates)
      .set({ ...values, updatedAt: new Date() })
      .where(eq(templates.id, id))
      .returning();
    if (!row) throw notFound('Template', id);
    return toView(row);
  } catch (error) {
    if (pgCode(error) === '23505') throw nameTaken(values.name ?? '');
    throw error;
  }
}

export async function countTemplateProcesses(db: Db, id: number): Promise<number> {
  const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(processes).where(eq(processes.templateId, id));
  return row?.n ?? 0;
}

/** Refused (409) while processes use it: they would lose what they run. */
export async function deleteTemplate(db: Db, id: number): Promise<void> {
  await getTemplate(db, id);
  const inUse = await countTemplateProcesses(db, id);
  if (inUse > 0) throw usedBy('Template', id, inUse);
  try {
    await db.delete(templates).where(eq(templates.id, id));
  } catch (error) {
    // A process created between the count and the delete.
    if (pgCode(error) === '23503') throw usedBy('Template', id, await countTemplateProcesses(db, id));
    throw error;
  }
}

export function usedBy(what: string, id: number, count: number): ServiceError {
  return new ServiceError(
    'conflict',
    `${what} ${id} is used by ${count} training process${count === 1 ? '' : 'es'}; delete ${count === 1 ? 'it' : 'them'} first.`,
  );
}

export interface TemplateListFilter {
  /** Template ids the caller may view; `all` for a global viewer. Filtering happens in SQL. */
  visibleTemplates: number[] | 'all';
  limit?: number;
  /** The last id of the previous page. */
  cursor?: number;
  /** `name` for pages (no cursor); `id` (default) for the paginated API. */
  orderBy?: 'id' | 'name';
}

export async function listTemplates(db: Db, filter: TemplateListFilter): Promise<{ items: TemplateView[]; nextCursor: number | null }> {
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 500);
  if (filter.visibleTemplates !== 'all' && filter.visibleTemplates.length === 0) return { items: [], nextCursor: null };
  const conditions = [];
  if (filter.visibleTemplates !== 'all') conditions.push(inArray(templates.id, filter.visibleTemplates));
  const byName = filter.orderBy === 'name';
  if (filter.cursor !== undefined && !byName) conditions.push(gt(templates.id, filter.cursor));
  const rows = await db
    .select()
    .from(templates)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(byName ? asc(templates.name) : asc(templates.id))
    .limit(limit + 1);
  const items = rows.slice(0, limit).map(toView);
  return { items, nextCursor: rows.length > limit && !byName ? items[items.length - 1]!.id : null };
}
