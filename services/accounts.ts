// Users, role grants, sessions and API tokens.
import { and, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiTokens, roleGrants, roles, sessions, userInvites, users } from '../db/schema.js';
import { ALL_PERMISSIONS, type Permission } from '../domain/permissions.js';
import { invalid, notFound, ServiceError, THINGS } from './errors.js';
import { hashPassword, randomSecret, sha256, verifyPassword } from './passwords.js';

export interface SessionUser {
  id: number;
  login: string;
  locale: 'ru' | 'en';
}

const LOGIN = /^[A-Za-z0-9._@-]{1,64}$/;
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const MIN_PASSWORD = 8;

export const loginTaken = (login: string) => ({
  en: `User ${login} already exists.`,
  ru: `Пользователь ${login} уже есть.`,
});

export function validateLogin(login: string): void {
  if (!LOGIN.test(login))
    throw invalid('login', {
      en: 'A login is 1–64 characters: letters, digits, dot, underscore, @ or dash.',
      ru: 'Логин: от 1 до 64 символов — латинские буквы, цифры, точка, подчёркивание, @ или дефис.',
    });
}

export function validatePassword(password: string): void {
  if (password.length < MIN_PASSWORD)
    throw invalid('password', {
      en: `A password needs at least ${MIN_PASSWORD} characters.`,
      ru: `В пароле нужно не меньше ${MIN_PASSWORD} символов.`,
    });
  if (password.length > 1024)
    throw invalid('password', {
      en: 'A password may have at most 1024 characters.',
      ru: 'В пароле не больше 1024 символов.',
    });
}

export async function roleByName(db: Db, name: string) {
  const [role] = await db.select().from(roles).where(eq(roles.name, name));
  if (!role) throw notFound(THINGS.role, name);
  return role;
}

export async function userByLogin(db: Db, login: string) {
  const [user] = await db.select().from(users).where(eq(users.login, login));
  if (!user) throw notFound(THINGS.user, login);
  return user;
}

export async function createUser(
  db: Db,
  input: { login: string; password: string; role?: string; templateId?: number | null },
) {
  validateLogin(input.login);
  validatePassword(input.password);
  const role = input.role ? await roleByName(db, input.role) : null;
  const passwordHash = await hashPassword(input.password);
  const [user] = await db.insert(users).values({ login: input.login, passwordHash }).onConflictDoNothing().returning();
  if (!user) throw new ServiceError('conflict', loginTaken(input.login), 'login');
  if (role)
    await db.insert(roleGrants).values({ userId: user.id, roleId: role.id, templateId: input.templateId ?? null });
  return user;
}

export async function setPassword(db: Db, login: string, password: string): Promise<void> {
  validatePassword(password);
  const user = await userByLogin(db, login);
  await db
    .update(users)
    .set({ passwordHash: await hashPassword(password), updatedAt: new Date() })
    .where(eq(users.id, user.id));
  // A new password ends every session of the old one, and an invite still waiting.
  await db.delete(sessions).where(eq(sessions.userId, user.id));
  await db.delete(userInvites).where(and(eq(userInvites.userId, user.id), isNull(userInvites.acceptedAt)));
}

export async function grantRole(
  db: Db,
  login: string,
  roleName: string,
  templateId: number | null = null,
): Promise<void> {
  const user = await userByLogin(db, login);
  const role = await roleByName(db, roleName);
  await db.insert(roleGrants).values({ userId: user.id, roleId: role.id, templateId }).onConflictDoNothing();
}

/** Checks a login and password; the same answer (and about the same time) for an unknown login. */
export async function authenticate(db: Db, login: string, password: string): Promise<SessionUser | null> {
  const [user] = await db.select().from(users).where(eq(users.login, login));
  // No password yet (an invite not accepted, single sign-on only): answered as slowly as a wrong one.
  if (!user || !user.isActive || !user.passwordHash.startsWith('scrypt$')) {
    await verifyPassword(password, DUMMY_HASH);
    return null;
  }
  if (!(await verifyPassword(password, user.passwordHash))) return null;
  return { id: user.id, login: user.login, locale: user.locale === 'en' ? 'en' : 'ru' };
}

// A real scrypt hash of a random password: checking against it costs what a real check costs.
const DUMMY_HASH = 'scrypt$131072$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export async function createSession(db: Db, userId: number): Promise<{ cookie: string; csrfToken: string }> {
  const cookie = randomSecret(32);
  const csrfToken = randomSecret(24);
  await db
    .insert(sessions)
    .values({ id: sha256(cookie), userId, csrfToken, expiresAt: new Date(Date.now() + SESSION_TTL_MS) });
  // A new session is a login: the users page shows when each user last came in.
  await db.update(users).set({ lastLoginAt: new Date() }).where(eq(users.id, userId));
  return { cookie, csrfToken };
}

export type Grants = { global: Set<Permission>; byTemplate: Map<number, Set<Permission>> };

/** A user's grants as one json column ([[templateId | null, permissions]…]), to ride along with another read. */
const grantsColumn = sql<Array<[number | null, string[]]> | string>`coalesce((
  select json_agg(json_build_array(${roleGrants.templateId}, ${roles.permissions}))
  from ${roleGrants} join ${roles} on ${roles.id} = ${roleGrants.roleId}
  where ${roleGrants.userId} = ${users.id}), '[]'::json)`;

/**
 * The user of a live session, with their grants: one query, since every page asks both (who, and what they may do)
 * before anything else.
 */
export async function sessionUser(
  db: Db,
  cookie: string,
): Promise<(SessionUser & { csrfToken: string; sessionId: string; grants: Grants }) | null> {
  const id = sha256(cookie);
  const [row] = await db
    .select({
      id: users.id,
      login: users.login,
      locale: users.locale,
      csrfToken: sessions.csrfToken,
      grants: grantsColumn,
    })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(and(eq(sessions.id, id), gt(sessions.expiresAt, new Date()), eq(users.isActive, true)));
  if (!row) return null;
  const grants =
    typeof row.grants === 'string' ? (JSON.parse(row.grants) as Array<[number | null, string[]]>) : row.grants;
  return {
    id: row.id,
    login: row.login,
    locale: row.locale === 'en' ? 'en' : 'ru',
    csrfToken: row.csrfToken,
    sessionId: id,
    grants: toGrants(grants.map(([templateId, permissions]) => ({ templateId, permissions }))),
  };
}

export async function destroySession(db: Db, cookie: string): Promise<void> {
  await db.delete(sessions).where(eq(sessions.id, sha256(cookie)));
}

export async function createToken(db: Db, login: string, options: { name?: string; expiresDays?: number } = {}) {
  const user = await userByLogin(db, login);
  if (options.expiresDays !== undefined && (!Number.isInteger(options.expiresDays) || options.expiresDays <= 0)) {
    throw invalid('expiresDays', {
      en: 'Expiry is a whole number of days, at least 1.',
      ru: 'Срок действия — целое число дней, не меньше 1.',
    });
  }
  const token = `ty_${randomSecret(30)}`;
  const name = (options.name ?? 'token').slice(0, 100);
  const expiresAt = options.expiresDays ? new Date(Date.now() + options.expiresDays * 86_400_000) : null;
  const [row] = await db
    .insert(apiTokens)
    .values({ userId: user.id, name, tokenHash: sha256(token), expiresAt })
    .returning();
  return { token, id: row!.id, name, expiresAt };
}

export async function revokeToken(db: Db, id: number): Promise<void> {
  const [row] = await db
    .update(apiTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
    .returning();
  if (!row) throw notFound(THINGS.token, id);
}

export async function tokenUser(db: Db, token: string): Promise<SessionUser | null> {
  const [row] = await db
    .update(apiTokens)
    .set({ lastUsedAt: new Date() })
    .where(
      and(
        eq(apiTokens.tokenHash, sha256(token)),
        isNull(apiTokens.revokedAt),
        or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, new Date())),
      ),
    )
    .returning({ userId: apiTokens.userId });
  if (!row) return null;
  const [user] = await db
    .select()
    .from(users)
    .where(and(eq(users.id, row.userId), eq(users.isActive, true)));
  return user ? { id: user.id, login: user.login, locale: user.locale === 'en' ? 'en' : 'ru' } : null;
}

/** Every permission a user holds: global ones, and per template. */
export async function permissionsOf(db: Db, userId: number): Promise<Grants> {
  const rows = await db
    .select({ permissions: roles.permissions, templateId: roleGrants.templateId })
    .from(roleGrants)
    .innerJoin(roles, eq(roles.id, roleGrants.roleId))
    .where(eq(roleGrants.userId, userId));
  return toGrants(rows);
}

function toGrants(rows: Array<{ templateId: number | null; permissions: string[] }>): Grants {
  const global = new Set<Permission>();
  const byTemplate = new Map<number, Set<Permission>>();
  for (const row of rows) {
    const known = row.permissions.filter((p): p is Permission => (ALL_PERMISSIONS as string[]).includes(p));
    if (row.templateId === null) known.forEach((p) => global.add(p));
    else {
      const set = byTemplate.get(row.templateId) ?? new Set<Permission>();
      known.forEach((p) => set.add(p));
      byTemplate.set(row.templateId, set);
    }
  }
  return { global, byTemplate };
}

export async function countUsers(db: Db): Promise<number> {
  const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(users);
  return row?.n ?? 0;
}

/** The user's stored language, which pages use when the browser has not chosen one. */
export async function setUserLocale(db: Db, userId: number, locale: string): Promise<void> {
  await db.update(users).set({ locale, updatedAt: new Date() }).where(eq(users.id, userId));
}

/** The id of the user with this login, or null. */
export async function userIdOf(db: Db, login: string): Promise<number | null> {
  const [user] = await db.select({ id: users.id }).from(users).where(eq(users.login, login));
  return user?.id ?? null;
}
