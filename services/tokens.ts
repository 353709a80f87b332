// A user's own API tokens, as the tokens page shows them: never the token itself
// (only its hash is stored), with last use and expiry. Creating goes through
// accounts.createToken, which the CLI shares.
import { and, desc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiTokens } from '../db/schema.js';
import { createToken } from './accounts.js';
import { invalid, notFound, THINGS } from './errors.js';
import { text } from './validate.js';

export interface TokenView {
  id: number;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  /** active, expired or revoked, as of now. */
  state: 'active' | 'expired' | 'revoked';
}

export async function listTokens(db: Db, userId: number, now = new Date()): Promise<TokenView[]> {
  const rows = await db.select().from(apiTokens).where(eq(apiTokens.userId, userId)).orderBy(desc(apiTokens.id));
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    state: row.revokedAt ? 'revoked' : row.expiresAt && row.expiresAt <= now ? 'expired' : 'active',
  }));
}

/** From the tokens form: a name and an optional expiry in days (empty → never). */
export async function createOwnToken(db: Db, login: string, input: { name: unknown; expiresDays?: unknown }) {
  const name = text('name', typeof input.name === 'string' ? input.name.trim() : input.name, { min: 1, max: 100 });
  let expiresDays: number | undefined;
  if (input.expiresDays !== undefined && input.expiresDays !== null && input.expiresDays !== '') {
    expiresDays =
      typeof input.expiresDays === 'string' && /^\d{1,5}$/.test(input.expiresDays)
        ? Number(input.expiresDays)
        : (input.expiresDays as number);
    if (typeof expiresDays !== 'number' || !Number.isInteger(expiresDays) || expiresDays < 1 || expiresDays > 3650) {
      throw invalid('expiresDays', {
        en: 'Expiry is a whole number of days from 1 to 3650, or empty for none.',
        ru: 'Срок действия — целое число дней от 1 до 3650 или пусто, если бессрочно.',
      });
    }
  }
  return createToken(db, login, { name, ...(expiresDays !== undefined ? { expiresDays } : {}) });
}

/** Revokes one of the user's own tokens; another user's token answers 404 like a missing one. */
export async function revokeOwnToken(db: Db, userId: number, tokenId: number): Promise<void> {
  const [row] = await db
    .update(apiTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiTokens.id, tokenId), eq(apiTokens.userId, userId), isNull(apiTokens.revokedAt)))
    .returning({ id: apiTokens.id });
  if (!row) throw notFound(THINGS.token, tokenId);
}
