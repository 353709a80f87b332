// User accounts as an administrator manages them (users.manage): who they are, whether
// they may still come in, and which roles they hold, globally or per template. Nothing
// here may leave the installation without an active user who can manage users.
import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiTokens, roleGrants, roles, sessions, templates, userInvites, users } from '../db/schema.js';
import { loginTaken, validateLogin, validatePassword } from './accounts.js';
import { invalid, notFound, ServiceError, THINGS, type LocalizedText } from './errors.js';
import { USER_LIMITS, type UserInput, type UserPatchInput } from './inputs.js';
import { dropWaitingInvite, firstInvite, NO_PASSWORD_YET, type IssuedInvite } from './invites.js';
import { hashPassword, randomSecret } from './passwords.js';
import { text } from './validate.js';

export interface UserGrant {
  role: string;
  templateId: number | null;
}

export interface UserView {
  id: number;
  login: string;
  name: string;
  active: boolean;
  lastLoginAt: string | null;
  roles: UserGrant[];
  createdAt: string;
  /** An invite not accepted yet (it may have expired), or null. */
  invite: { expiresAt: string } | null;
}

/** What a change would leave behind: no active user holding users.manage globally. */
export class LastAdminError extends ServiceError {
  constructor(
    text: LocalizedText = {
      en: 'Refused: no active user would be left with users.manage; grant it to someone else first.',
      ru:
        'Отказано: не останется ни одного активного пользователя с правом users.manage; ' +
        'сначала выдайте его кому-то ещё.',
    },
  ) {
    super('conflict', text);
  }
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

// Serialises every change that can remove the last user admin, so two at once cannot both pass the check.
const USER_ADMIN_LOCK = 7301003;

export async function lockUserAdmins(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${USER_ADMIN_LOCK})`);
}

/** Throws (rolling the transaction back) when no active user holds users.manage globally any more. */
export async function ensureUserAdminLeft(tx: Tx, refusal: () => ServiceError = () => new LastAdminError()) {
  const [left] = await tx
    .select({ n: sql<number>`count(*)::int` })
    .from(roleGrants)
    .innerJoin(roles, eq(roles.id, roleGrants.roleId))
    .innerJoin(users, eq(users.id, roleGrants.userId))
    .where(
      and(isNull(roleGrants.templateId), eq(users.isActive, true), sql`'users.manage' = any(${roles.permissions})`),
    );
  if ((left?.n ?? 0) === 0) throw refusal();
}

function validateName(value: string | undefined): string {
  return value === undefined ? '' : text('name', value.trim(), { max: USER_LIMITS.name });
}

/** A one-time password for a new user or a reset: shown once, never stored in the clear. */
export function generatePassword(): string {
  return randomSecret(12);
}

/** Role names and template ids → grant rows to insert, or a 400 naming the bad one. */
async function resolveGrants(
  db: Db | Tx,
  grants: UserInput['roles'],
): Promise<Array<{ roleId: number; templateId: number | null }>> {
  const names = [...new Set(grants.map((g) => g.role))];
  const found = names.length ? await db.select().from(roles).where(inArray(roles.name, names)) : [];
  const byName = new Map(found.map((r) => [r.name, r.id]));
  const templateIds = [
    ...new Set(grants.map((g) => g.templateId).filter((id): id is number => typeof id === 'number')),
  ];
  const known = templateIds.length
    ? new Set(
        (await db.select({ id: templates.id }).from(templates).where(inArray(templates.id, templateIds))).map(
          (t) => t.id,
        ),
      )
    : new Set<number>();
  const out = new Map<string, { roleId: number; templateId: number | null }>();
  for (const grant of grants) {
    const roleId = byName.get(grant.role);
    if (roleId === undefined)
      throw invalid('roles', {
        en: `No role named ${JSON.stringify(grant.role)}.`,
        ru: `Нет роли с именем ${JSON.stringify(grant.role)}.`,
      });
    const templateId = grant.templateId ?? null;
    if (templateId !== null && !known.has(templateId))
      throw invalid('roles', { en: `No template ${templateId}.`, ru: `Нет шаблона ${templateId}.` });
    out.set(`${roleId}:${templateId ?? 0}`, { roleId, templateId });
  }
  return [...out.values()];
}

export async function listUserViews(db: Db): Promise<UserView[]> {
  const rows = await db.select().from(users).orderBy(asc(users.login));
  const grants = await db
    .select({ userId: roleGrants.userId, role: roles.name, templateId: roleGrants.templateId })
    .from(roleGrants)
    .innerJoin(roles, eq(roles.id, roleGrants.roleId))
    .orderBy(asc(roles.name), asc(roleGrants.templateId));
  const byUser = new Map<number, UserGrant[]>();
  for (const { userId, ...grant } of grants) byUser.set(userId, [...(byUser.get(userId) ?? []), grant]);
  const waiting = await db
    .select({ userId: userInvites.userId, expiresAt: userInvites.expiresAt })
    .from(userInvites)
    .where(isNull(userInvites.acceptedAt));
  const inviteOf = new Map(waiting.map((w) => [w.userId, { expiresAt: w.expiresAt.toISOString() }]));
  return rows.map((user) => ({
    id: user.id,
    login: user.login,
    name: user.name,
    active: user.isActive,
    lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
    roles: byUser.get(user.id) ?? [],
    createdAt: user.createdAt.toISOString(),
    invite: inviteOf.get(user.id) ?? null,
  }));
}

export async function getUserView(db: Db, id: number): Promise<UserView> {
  const user = (await listUserViews(db)).find((u) => u.id === id);
  if (!user) throw notFound(THINGS.user, id);
  return user;
}

/**
 * A new user with their grants. Without a password given, a generated one comes back, once;
 * or, with `invite`, no password at all but an invite whose token comes back, once.
 */
export async function createUserAccount(
  db: Db,
  input: UserInput,
): Promise<{ user: UserView; password?: string; invite?: IssuedInvite }> {
  validateLogin(input.login);
  const name = validateName(input.name);
  if (input.invite && input.password !== undefined)
    throw invalid('invite', {
      en: 'Give a password or ask for an invite, not both.',
      ru: 'Укажите пароль или попросите приглашение, но не то и другое.',
    });
  const password = input.invite ? undefined : (input.password ?? generatePassword());
  if (password !== undefined) validatePassword(password);
  const grants = await resolveGrants(db, input.roles);
  const passwordHash = password === undefined ? NO_PASSWORD_YET : await hashPassword(password);
  const { id, invite } = await db.transaction(async (tx) => {
    const [user] = await tx
      .insert(users)
      .values({ login: input.login, name, passwordHash })
      .onConflictDoNothing()
      .returning({ id: users.id });
    if (!user) throw new ServiceError('conflict', loginTaken(input.login), 'login');
    if (grants.length) await tx.insert(roleGrants).values(grants.map((g) => ({ ...g, userId: user.id })));
    return { id: user.id, invite: input.invite ? await firstInvite(tx, user.id) : undefined };
  });
  const user = await getUserView(db, id);
  if (invite) return { user, invite };
  return input.password === undefined ? { user, password } : { user };
}

/**
 * Changes a user's name, whether they are active, and (replacing them) their grants. A
 * deactivated user's sessions end and tokens are revoked in the same transaction, so
 * their next request is refused; reactivating them brings neither back.
 */
export async function updateUser(db: Db, id: number, patch: UserPatchInput): Promise<UserView> {
  const name = patch.name === undefined ? undefined : validateName(patch.name);
  const grants = patch.roles === undefined ? undefined : await resolveGrants(db, patch.roles);
  await db.transaction(async (tx) => {
    await lockUserAdmins(tx);
    const [user] = await tx.select({ id: users.id }).from(users).where(eq(users.id, id)).for('update');
    if (!user) throw notFound(THINGS.user, id);
    const values: Partial<typeof users.$inferInsert> = {};
    if (name !== undefined) values.name = name;
    if (patch.active !== undefined) values.isActive = patch.active;
    if (Object.keys(values).length)
      await tx
        .update(users)
        .set({ ...values, updatedAt: new Date() })
        .where(eq(users.id, id));
    if (patch.active === false) await endCredentials(tx, id);
    if (grants !== undefined) {
      await tx.delete(roleGrants).where(eq(roleGrants.userId, id));
      if (grants.length) await tx.insert(roleGrants).values(grants.map((g) => ({ ...g, userId: id })));
    }
    if (patch.active === false || grants !== undefined) await ensureUserAdminLeft(tx);
  });
  return getUserView(db, id);
}

async function endCredentials(tx: Tx, userId: number): Promise<void> {
  await tx.delete(sessions).where(eq(sessions.userId, userId));
  await tx
    .update(apiTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiTokens.userId, userId), isNull(apiTokens.revokedAt)));
}

/** A new one-time password; the old one, every session made with it and a waiting invite stop working. */
export async function resetPassword(db: Db, id: number): Promise<{ user: UserView; password: string }> {
  const password = generatePassword();
  const passwordHash = await hashPassword(password);
  const [row] = await db
    .update(users)
    .set({ passwordHash, updatedAt: new Date() })
    .where(eq(users.id, id))
    .returning({ id: users.id });
  if (!row) throw notFound(THINGS.user, id);
  await db.delete(sessions).where(eq(sessions.userId, id));
  await dropWaitingInvite(db, id);
  return { user: await getUserView(db, id), password };
}
