// Training templates: what to train and how (docs/design.md). Every write is validated
// here, whoever calls (form, JSON API, CLI); a failure names its field. Secret env
// values are write-only: sealed under TRAINYARD_SECRET on the way in, never shown again
// (a view names their keys only), opened only by the worker that launches a trainer.
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { processes, templates } from '../db/schema.js';
import { sealEnvValue } from '../lib/keybox.js';
import { invalid, notFound, ServiceError, THINGS, type LocalizedText } from './errors.js';
import { TEMPLATE_LIMITS, type TemplateInput, type TemplatePatchInput } from './inputs.js';
import { validRestart, validStallSeconds } from './restart-policy.js';
import { integer, isPlainObject, jsonValue, optionalText, pgCode, rejectUnknown, text } from './validate.js';
import { restartPolicyOf, type RestartPolicy } from '../domain/restart.js';

export { TEMPLATE_LIMITS, type TemplateInput, type TemplatePatchInput } from './inputs.js';

export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The key secret env values are sealed under (TRAINYARD_SECRET); needed only to write them. */
export interface TemplateSecrets {
  secret?: string;
}

export interface TemplateView {
  id: number;
  name: string;
  description: string;
  command: string;
  workingDir: string | null;
  env: Record<string, string>;
  /** Names of the secret env variables; their values are never shown. */
  secretEnvKeys: string[];
  params: Record<string, unknown>;
  totalSteps: number | null;
  stopGraceSeconds: number;
  /** What follows a failed run (defaults filled in: onFailure 0 never restarts). */
  restart: RestartPolicy;
  /** A run that writes no metric line for this long is stalled; null: never. */
  stallSeconds: number | null;
  createdAt: string;
  updatedAt: string;
}

/** Every field a template's input may hold (the API's body, the page's form). */
export const TEMPLATE_FIELDS = [
  'name',
  'description',
  'command',
  'workingDir',
  'env',
  'secretEnv',
  'params',
  'totalSteps',
  'stopGraceSeconds',
  'restart',
  'stallSeconds',
] as const;

/** What viewers without templates.manage see in place of each env value. */
export const ENV_MASK = '••••';

type Row = typeof templates.$inferSelect;

function toView(row: Row): TemplateView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    command: row.command,
    workingDir: row.workingDir,
    env: row.env,
    secretEnvKeys: Object.keys(row.secretEnv ?? {}).sort(),
    params: row.params,
    totalSteps: row.totalSteps,
    stopGraceSeconds: row.stopGraceSeconds,
    restart: restartPolicyOf(row.restart),
    stallSeconds: row.stallSeconds,
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
  if (command.trim() === '')
    throw invalid('command', { en: 'command must not be blank.', ru: 'Команда не может быть пустой.' });
  return command;
}

export function validEnv(value: unknown, field = 'env'): Record<string, string> {
  const checked = validEnvEntries(value, field, false);
  return checked as Record<string, string>;
}

/** env, or secretEnv (where null, on a patch, removes a key). */
function validEnvEntries(value: unknown, field: string, nullRemoves: boolean): Record<string, string | null> {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value))
    throw invalid(field, {
      en: `${field} is an object of NAME: "value" strings.`,
      ru: `${field}: объект вида NAME: "значение".`,
    });
  const entries = Object.entries(value);
  if (entries.length > TEMPLATE_LIMITS.envEntries)
    throw invalid(field, {
      en: `${field} may have at most ${TEMPLATE_LIMITS.envEntries} variables.`,
      ru: `${field}: не больше ${TEMPLATE_LIMITS.envEntries} переменных.`,
    });
  const out: Record<string, string | null> = {};
  for (const [key, item] of entries) {
    if (!ENV_KEY.test(key))
      throw invalid(`${field}.${key}`, {
        en: `"${key}" is not a variable name: letters, digits and _, not starting with a digit.`,
        ru: `"${key}" не имя переменной: буквы, цифры и _, не с цифры в начале.`,
      });
    // TRAINYARD_* are the platform's own (DESIGN §5); a template may not forge them.
    if (key.toUpperCase().startsWith('TRAINYARD_'))
      throw invalid(`${field}.${key}`, {
        en: `${key}: TRAINYARD_ variables are set by Trainyard itself.`,
        ru: `${key}: переменные TRAINYARD_ задаёт сам Trainyard.`,
      });
    out[key] =
      nullRemoves && item === null
        ? null
        : text(`${field}.${key}`, item, { max: TEMPLATE_LIMITS.envValueBytes, bytes: true, multiline: true });
  }
  return out;
}

/**
 * The secret env a write leaves: `current` with the given keys sealed in (null removes
 * one), checked against the plain env it will sit beside: one name, one place.
 */
function mergeSecretEnv(
  body: Record<string, unknown>,
  current: Record<string, string>,
  env: Record<string, string>,
  secrets: TemplateSecrets,
): Record<string, string> | undefined {
  if (!Object.prototype.hasOwnProperty.call(body, 'secretEnv') || body.secretEnv === undefined) {
    for (const key of Object.keys(current)) {
      if (key in env)
        throw invalid(`env.${key}`, {
          en: `${key} is a secret variable of this template; remove it from secretEnv (null) to make it plain.`,
          ru: `${key} — секретная переменная этого шаблона; удалите её из секретных, чтобы сделать обычной.`,
        });
    }
    return undefined;
  }
  const given = validEnvEntries(body.secretEnv, 'secretEnv', true);
  const next: Record<string, string> = { ...current };
  for (const [key, value] of Object.entries(given)) {
    if (value === null) {
      delete next[key];
      continue;
    }
    if (!secrets.secret)
      throw new ServiceError('unavailable', {
        en: 'Secret env values need TRAINYARD_SECRET to be stored.',
        ru: 'Чтобы хранить секретные переменные, серверу нужен TRAINYARD_SECRET.',
      });
    next[key] = sealEnvValue(secrets.secret, value);
  }
  for (const key of Object.keys(next)) {
    if (key in env)
      throw invalid(`secretEnv.${key}`, {
        en: `${key} is also a plain env variable; a name is either plain or secret.`,
        ru: `${key} есть и среди обычных переменных; имя бывает либо обычным, либо секретным.`,
      });
  }
  if (Object.keys(next).length + Object.keys(env).length > TEMPLATE_LIMITS.envEntries) {
    throw invalid('secretEnv', {
      en: `env and secretEnv may have at most ${TEMPLATE_LIMITS.envEntries} variables together.`,
      ru: `Обычных и секретных переменных вместе не больше ${TEMPLATE_LIMITS.envEntries}.`,
    });
  }
  return next;
}

/** A view for someone without templates.manage: env names kept, values masked; secret keys only. */
export function maskedTemplate(view: TemplateView): TemplateView {
  return { ...view, env: Object.fromEntries(Object.keys(view.env).map((key) => [key, ENV_MASK])) };
}

export function validParams(value: unknown, field = 'params'): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value))
    throw invalid(field, {
      en: `${field} is a JSON object of hyperparameters.`,
      ru: `${field}: JSON-объект гиперпараметров.`,
    });
  const params = jsonValue(field, value) as Record<string, unknown>;
  if (Buffer.byteLength(JSON.stringify(params), 'utf8') > TEMPLATE_LIMITS.paramsBytes) {
    throw invalid(field, { en: `${field} may be at most 64 KiB of JSON.`, ru: `${field}: не больше 64 КиБ JSON.` });
  }
  return params;
}

/** Checks a full body (create) or the fields present (patch); returns only what to write. */
export function validateTemplate(body: unknown, mode: 'create' | 'patch'): Partial<typeof templates.$inferInsert> {
  if (!isPlainObject(body))
    throw invalid('body', { en: 'A template is a JSON object.', ru: 'Шаблон — это JSON-объект.' });
  rejectUnknown(body, TEMPLATE_FIELDS);
  const out: Partial<typeof templates.$inferInsert> = {};
  const has = (key: (typeof TEMPLATE_FIELDS)[number]) =>
    Object.prototype.hasOwnProperty.call(body, key) && body[key] !== undefined;
  if (mode === 'create') {
    if (!has('name')) throw invalid('name', { en: 'name is required.', ru: 'Нужно имя.' });
    if (!has('command')) throw invalid('command', { en: 'command is required.', ru: 'Нужна команда.' });
  }
  if (has('name')) out.name = validName(body.name);
  if (has('description'))
    out.description =
      optionalText('description', body.description, { max: TEMPLATE_LIMITS.description, multiline: true }) ?? '';
  if (has('command')) out.command = validCommand(body.command);
  if (has('workingDir'))
    out.workingDir = optionalText('workingDir', body.workingDir, { max: TEMPLATE_LIMITS.workingDir });
  if (has('env')) out.env = validEnv(body.env);
  if (has('params')) out.params = validParams(body.params);
  if (has('totalSteps'))
    out.totalSteps =
      body.totalSteps === null ? null : integer('totalSteps', body.totalSteps, 1, TEMPLATE_LIMITS.totalSteps);
  if (has('stopGraceSeconds'))
    out.stopGraceSeconds = integer('stopGraceSeconds', body.stopGraceSeconds, 0, TEMPLATE_LIMITS.stopGraceSeconds);
  if (has('restart')) out.restart = validRestart(body.restart);
  if (has('stallSeconds')) out.stallSeconds = validStallSeconds(body.stallSeconds);
  return out;
}

const nameTaken = (name: string) =>
  new ServiceError(
    'conflict',
    { en: `A template named "${name}" already exists.`, ru: `Шаблон с именем «${name}» уже есть.` },
    'name',
  );

export async function createTemplate(
  db: Db,
  input: TemplateInput | Record<string, unknown>,
  secrets: TemplateSecrets = {},
): Promise<TemplateView> {
  const values = validateTemplate(input, 'create') as typeof templates.$inferInsert;
  const secretEnv = mergeSecretEnv(input, {}, values.env ?? {}, secrets);
  if (secretEnv) values.secretEnv = secretEnv;
  const [row] = await db.insert(templates).values(values).onConflictDoNothing({ target: templates.name }).returning();
  if (!row) throw nameTaken(values.name);
  return toView(row);
}

export async function getTemplate(db: Db, id: number): Promise<TemplateView> {
  const [row] = await db.select().from(templates).where(eq(templates.id, id));
  if (!row) throw notFound(THINGS.template, id);
  return toView(row);
}

/** Editing a template changes future runs only: each run keeps its own copy (DESIGN §4). */
export async function updateTemplate(
  db: Db,
  id: number,
  patch: TemplatePatchInput | Record<string, unknown>,
  secrets: TemplateSecrets = {},
): Promise<TemplateView> {
  const values = validateTemplate(patch, 'patch');
  const touchesSecrets = (patch as Record<string, unknown>).secretEnv !== undefined;
  if (Object.keys(values).length === 0 && !touchesSecrets) return getTemplate(db, id);
  try {
    // Read and write under the row lock, so two edits of the secrets do not lose one another.
    return await db.transaction(async (tx) => {
      const [current] = await tx.select().from(templates).where(eq(templates.id, id)).for('update');
      if (!current) throw notFound(THINGS.template, id);
      const secretEnv = mergeSecretEnv(patch, current.secretEnv ?? {}, values.env ?? current.env, secrets);
      const [row] = await tx
        .update(templates)
        .set({ ...values, ...(secretEnv ? { secretEnv } : {}), updatedAt: new Date() })
        .where(eq(templates.id, id))
        .returning();
      return toView(row!);
    });
  } catch (error) {
    if (pgCode(error) === '23505') throw nameTaken(values.name ?? '');
    throw error;
  }
}

export async function countTemplateProcesses(db: Db, id: number): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(processes)
    .where(eq(processes.templateId, id));
  return row?.n ?? 0;
}

/** Refused (409) while processes use it: they would lose what they run. */
export async function deleteTemplate(db: Db, id: number): Promise<void> {
  await getTemplate(db, id);
  const inUse = await countTemplateProcesses(db, id);
  if (inUse > 0) throw usedBy(THINGS.template, id, inUse);
  try {
    await db.delete(templates).where(eq(templates.id, id));
  } catch (error) {
    // A process created between the count and the delete.
    if (pgCode(error) === '23503') throw usedBy(THINGS.template, id, await countTemplateProcesses(db, id));
    throw error;
  }
}

export function usedBy(what: LocalizedText, id: number, count: number): ServiceError {
  return new ServiceError('conflict', {
    en: `${what.en} ${id} is used by ${count} training process${count === 1 ? '' : 'es'}; delete ${count === 1 ? 'it' : 'them'} first.`,
    ru: `${what.ru[0]!.toUpperCase()}${what.ru.slice(1)} ${id} используется процессами обучения (${count}); сначала удалите их.`,
  });
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

export async function listTemplates(
  db: Db,
  filter: TemplateListFilter,
): Promise<{ items: TemplateView[]; nextCursor: number | null }> {
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
