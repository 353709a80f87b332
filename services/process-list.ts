// The process list the pages and the JSON API share: filtered (template, machine, status,
// a name search), sorted (newest first, status, machine, progress, start time), paged by
// keyset. A cursor holds the last row's sort key and id, so a page after a tie neither
// skips nor repeats a row, and a deep page costs what the first does.
import { and, asc, desc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { machines, processes } from '../db/schema.js';
import { isPgText } from '../domain/pg-text.js';
import { STATUSES, type ProcessStatus } from '../domain/status.js';
import { invalid } from './errors.js';
import { latestRun, processQuery, toView, type LatestRun, type ProcessView } from './processes.js';

export const SORT_KEYS = ['created', 'status', 'machine', 'progress', 'started'] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortOrder = 'asc' | 'desc';
export const PAGE_SIZES = [25, 50, 100, 200] as const;
export const MAX_SEARCH = 200;

export interface ListFilter {
  templateId?: number;
  machineId?: number;
  status?: ProcessStatus;
  /** Part of the name (any case), or `#id` / an id. */
  search?: string;
  /** Template ids the caller may view; `all` for a global viewer. Filtering happens in SQL. */
  visibleTemplates: number[] | 'all';
  limit?: number;
  /** `created` (by id) unless named. */
  sort?: SortKey;
  /** `asc` unless named. */
  order?: SortOrder;
  /** nextCursor of the previous page: an id when sorted by `created`, else an opaque token. */
  cursor?: number | string;
  /** Also count the processes per status (the filter without its status and cursor). */
  withCounts?: boolean;
}

export interface ProcessList {
  items: ProcessView[];
  /** Each listed process's status version, read with its row (what the live feed compares against). */
  versions: Map<number, number>;
  nextCursor: number | string | null;
  counts?: Partial<Record<ProcessStatus, number>>;
}

interface SortSpec {
  expr: (latest: LatestRun) => SQL;
  /** The SQL type a cursor's key is read back as. */
  type: string;
  /** What a key of this sort looks like, so a forged cursor is a 400 and never a cast error. */
  valid: (key: string) => boolean;
}

// Lifecycle order (domain/status.ts), not the alphabet: created … running … failed.
const STATUS_ORDER = sql.raw(`array[${STATUSES.map((s) => `'${s}'`).join(',')}]::text[]`);
const SORTS: Record<Exclude<SortKey, 'created'>, SortSpec> = {
  status: {
    expr: () => sql`coalesce(array_position(${STATUS_ORDER}, ${processes.status}), 0)`,
    type: 'int',
    valid: (key) => /^\d{1,2}$/.test(key),
  },
  machine: { expr: () => sql`${machines.name}`, type: 'text', valid: (key) => key.length <= 1000 && isPgText(key) },
  // Nothing run yet sorts below 0 %.
  progress: {
    expr: (latest) => sql`coalesce(${latest.step}::float8 / nullif(${latest.totalSteps}, 0), -1)`,
    type: 'float8',
    valid: (key) => /^-?\d+(\.\d+)?(e[+-]?\d+)?$/.test(key),
  },
  started: {
    expr: (latest) => sql`coalesce(${latest.startedAt}, '-infinity'::timestamptz)`,
    type: 'timestamptz',
    valid: (key) => key === '-infinity' || /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?$/.test(key),
  },
};

/** The cursor after a row: its id when sorted by id, else base64url of [sort key as text, id]. */
export function encodeCursor(sort: SortKey, key: string | null, id: number): number | string {
  return sort === 'created' ? id : Buffer.from(JSON.stringify([key, id])).toString('base64url');
}

function decodeCursor(sort: SortKey, cursor: number | string): { key: string | null; id: number } {
  const bad = () =>
    invalid('cursor', {
      en: 'cursor is not a nextCursor of this list (same sort); start from the first page.',
      ru: 'Этот курсор не от этого списка (с той же сортировкой); начните с первой страницы.',
    });
  if (sort === 'created') {
    const id = typeof cursor === 'number' ? cursor : /^\d{1,10}$/.test(cursor) ? Number(cursor) : NaN;
    if (!Number.isSafeInteger(id) || id < 0 || id > 2_147_483_647) throw bad();
    return { key: null, id };
  }
  if (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]{1,2000}$/.test(cursor)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad();
  const [key, id] = parsed as [unknown, unknown];
  if (typeof key !== 'string' || !SORTS[sort].valid(key)) throw bad();
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 2_147_483_647) throw bad();
  return { key, id };
}

/** A search as the list reads it: trimmed, bounded, storable; empty means none. */
export function validSearch(search: string | undefined): string | undefined {
  const q = search?.trim() ?? '';
  if (q === '') return undefined;
  if (q.length > MAX_SEARCH)
    throw invalid('q', {
      en: `The search may be at most ${MAX_SEARCH} characters.`,
      ru: `Строка поиска — не длиннее ${MAX_SEARCH} символов.`,
    });
  if (!isPgText(q))
    throw invalid('q', {
      en: 'The search holds a character a name cannot (NUL or a lone surrogate).',
      ru: 'В строке поиска есть символ, которого не бывает в имени (NUL или одиночный суррогат).',
    });
  return q;
}

/** LIKE's own characters taken literally, so `50%_off` finds that name and nothing more. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function searchCondition(q: string): SQL {
  const byName = sql`coalesce(${processes.name}, '') ilike ${`%${likeLiteral(q)}%`} escape '\\'`;
  const id = /^#?(\d{1,9})$/.exec(q)?.[1];
  return id === undefined ? byName : sql`(${byName} or ${processes.id} = ${Number(id)})`;
}

export async function listProcesses(db: Db, filter: ListFilter): Promise<ProcessList> {
  const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
  const sort = filter.sort ?? 'created';
  const order = filter.order ?? 'asc';
  const search = validSearch(filter.search);
  const scope = [eq(processes.deleting, false)];
  if (filter.templateId !== undefined) scope.push(eq(processes.templateId, filter.templateId));
  if (filter.machineId !== undefined) scope.push(eq(processes.machineId, filter.machineId));
  if (search !== undefined) scope.push(searchCondition(search));
  if (filter.visibleTemplates !== 'all') {
    if (filter.visibleTemplates.length === 0) return { items: [], versions: new Map(), nextCursor: null, counts: {} };
    scope.push(inArray(processes.templateId, filter.visibleTemplates));
  }
  const conditions = [...scope];
  if (filter.status !== undefined) conditions.push(eq(processes.status, filter.status));

  const spec = sort === 'created' ? null : SORTS[sort];
  const latest = latestRun(db);
  const key = spec ? spec.expr(latest) : null;
  const direction = order === 'asc' ? asc : desc;
  const op = sql.raw(order === 'asc' ? '>' : '<');
  if (filter.cursor !== undefined) {
    const after = decodeCursor(sort, filter.cursor);
    // Row comparison: strictly after (key, id) in this order, so ties are split by id.
    conditions.push(
      key && spec
        ? sql`(${key}, ${processes.id}) ${op} (${after.key}::${sql.raw(spec.type)}, ${after.id})`
        : sql`${processes.id} ${op} ${after.id}`,
    );
  }
  const rows = await processQuery(
    db,
    {
      sortKey: key ? sql<string>`(${key})::text` : sql<null>`null`,
      // The counts ride along with the rows: one round trip for the table and its header.
      counts: filter.withCounts ? sql<CountRow>`(${countsQuery(scope)})` : sql<null>`null`,
    },
    latest,
  )
    .where(and(...conditions))
    .orderBy(...(key ? [direction(key)] : []), direction(processes.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const list: ProcessList = {
    items: page.map((row) => toView(row)),
    versions: new Map(page.map((row) => [row.process.id, row.process.statusVersion])),
    nextCursor: rows.length > limit && last ? encodeCursor(sort, last.sortKey, last.process.id) : null,
  };
  if (filter.withCounts) {
    // No row came back to carry them (nothing matches, or past the end): ask alone.
    const counts = rows[0]
      ? rows[0].counts
      : (await db.execute<{ counts: CountRow }>(sql`select (${countsQuery(scope)}) as counts`))[0]?.counts;
    // json arrives parsed from postgres.js; as text from a driver that leaves it be.
    list.counts = (typeof counts === 'string' ? (JSON.parse(counts) as Record<string, number>) : counts) ?? {};
  }
  return list;
}

type CountRow = Record<string, number> | string | null;

function countsQuery(scope: SQL[]): SQL {
  return sql`select json_object_agg(c.status, c.n) from (select ${processes.status} as status, count(*)::int as n from ${processes} where ${and(...scope)} group by ${processes.status}) c`;
}
