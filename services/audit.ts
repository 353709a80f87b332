// The audit log: who did what to what, when, and how it ended. Every create, action,
// delete, login, role and token change is written here, from the web app (a hook
// records each state-changing request) and from the CLI.
import { and, desc, eq, gte, like, lt, lte, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { auditEvents } from '../db/schema.js';

export type AuditOutcome =
  'ok' | 'failed' | 'invalid' | 'unauthenticated' | 'denied' | 'not_found' | 'refused' | 'rate_limited' | 'error';
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = [
  'ok',
  'failed',
  'invalid',
  'unauthenticated',
  'denied',
  'not_found',
  'refused',
  'rate_limited',
  'error',
];

export interface AuditActor {
  userId: number | null;
  login: string | null;
}

export interface AuditEntry {
  actor: AuditActor;
  /** Dotted verb, e.g. `process.start`, `login`, `token.create`, `role.update`. */
  action: string;
  targetType?: string | null;
  targetId?: string | number | null;
  outcome: AuditOutcome;
  detail?: Record<string, unknown> | null;
}

export const CLI_ACTOR: AuditActor = { userId: null, login: 'cli' };

/** The outcome an HTTP status stands for. */
export function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'ok';
  if (status === 400) return 'invalid';
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'denied';
  if (status === 404) return 'not_found';
  if (status === 409) return 'refused';
  if (status === 429) return 'rate_limited';
  return 'error';
}

// Bounded, so a hostile request cannot make the log itself huge.
function clip(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > 500 ? `${value.slice(0, 500)}…` : value.replace(/\u0000/g, '');
  if (Array.isArray(value)) return depth > 3 ? '[…]' : value.slice(0, 20).map((v) => clip(v, depth + 1));
  if (value && typeof value === 'object') {
    if (depth > 3) return '{…}';
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value).slice(0, 30)) {
      Object.defineProperty(out, clip(key) as string, {
        value: clip(item, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

export async function recordAudit(db: Db, entry: AuditEntry): Promise<void> {
  await db.insert(auditEvents).values({
    actorUserId: entry.actor.userId,
    actorLogin: entry.actor.login === null ? null : (clip(entry.actor.login) as string),
    action: entry.action.slice(0, 200),
    targetType: entry.targetType ?? null,
    targetId: entry.targetId === undefined || entry.targetId === null ? null : String(entry.targetId).slice(0, 200),
    outcome: entry.outcome,
    detail: entry.detail ? clip(entry.detail) : null,
  });
}

export interface AuditFilter {
  /** Exact login. */
  actor?: string;
  /** An action, or a prefix ending in `.` (e.g. `process.`). */
  action?: string;
  outcome?: AuditOutcome;
  targetType?: string;
  targetId?: string;
  since?: Date;
  until?: Date;
  limit?: number;
  /** The last id of the previous page (newest first). */
  cursor?: number;
}

export interface AuditView {
  id: number;
  at: string;
  actorUserId: number | null;
  actorLogin: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  detail: unknown;
}

const escapeLike = (value: string) => value.replace(/[\\%_]/g, (c) => `\\${c}`);

export async function listAudit(
  db: Db,
  filter: AuditFilter = {},
): Promise<{ items: AuditView[]; nextCursor: number | null }> {
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 500);
  const conditions: SQL[] = [];
  if (filter.actor) conditions.push(eq(auditEvents.actorLogin, filter.actor));
  if (filter.action) {
    conditions.push(
      filter.action.endsWith('.')
        ? like(auditEvents.action, `${escapeLike(filter.action)}%`)
        : eq(auditEvents.action, filter.action),
    );
  }
  if (filter.outcome) conditions.push(eq(auditEvents.outcome, filter.outcome));
  if (filter.targetType) conditions.push(eq(auditEvents.targetType, filter.targetType));
  if (filter.targetId) conditions.push(eq(auditEvents.targetId, filter.targetId));
  if (filter.since) conditions.push(gte(auditEvents.at, filter.since));
  if (filter.until) conditions.push(lte(auditEvents.at, filter.until));
  if (filter.cursor !== undefined) conditions.push(lt(auditEvents.id, filter.cursor));
  const rows = await db
    .select()
    .from(auditEvents)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(desc(auditEvents.id))
    .limit(limit + 1);
  const items = rows.slice(0, limit).map((row) => ({
    id: row.id,
    at: row.at.toISOString(),
    actorUserId: row.actorUserId,
    actorLogin: row.actorLogin,
    action: row.action,
    targetType: row.targetType,
    targetId: row.targetId,
    outcome: row.outcome,
    detail: row.detail,
  }));
  return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null };
}
