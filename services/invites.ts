// Invites: instead of a one-time password, a new user gets a link on which they choose their
// own. The link's token is random and single-use; only its SHA-256 is stored (as API tokens
// are), and a new invite for the same user replaces the old one, which stops working.
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { sessions, userInvites, users } from '../db/schema.js';
import { validatePassword } from './accounts.js';
import { notFound, ServiceError, THINGS, type LocalizedText } from './errors.js';
import { hashPassword, randomSecret, sha256 } from './passwords.js';

export const INVITE_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** The password hash of an invited user until they accept: no password matches it. */
export const NO_PASSWORD_YET = '!invite';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface IssuedInvite {
  /** Goes into the link, shown once; never stored. */
  token: string;
  expiresAt: Date;
}

/** The path of an invite's link; the caller puts the site's address in front. */
export const invitePath = (token: string) => `/invite/${encodeURIComponent(token)}`;

/** A fresh invite for the user, replacing one they have not accepted yet; null when theirs is accepted. */
async function putInvite(db: Db | Tx, userId: number, now: Date): Promise<IssuedInvite | null> {
  const token = randomSecret(32);
  const expiresAt = new Date(now.getTime() + INVITE_TTL_MS);
  const values = { tokenHash: sha256(token), expiresAt, acceptedAt: null, createdAt: now };
  const [row] = await db
    .insert(userInvites)
    .values({ userId, ...values })
    .onConflictDoUpdate({ target: userInvites.userId, set: values, setWhere: isNull(userInvites.acceptedAt) })
    .returning({ userId: userInvites.userId });
  return row ? { token, expiresAt } : null;
}

/** The invite of a user just created without a password (inside the transaction that creates them). */
export async function firstInvite(tx: Tx, userId: number, now = new Date()): Promise<IssuedInvite> {
  const invite = await putInvite(tx, userId, now);
  if (!invite) throw new Error(`user ${userId} is new, yet already has an accepted invite`);
  return invite;
}

export const noInviteWaiting = (login: string): LocalizedText => ({
  en: `${login} has no invite waiting: they have set a password already. Reset their password instead.`,
  ru: `У пользователя ${login} нет ожидающего приглашения: пароль уже задан. Сбросьте пароль.`,
});

/** A new link for a user who has not accepted theirs yet; the old link stops working. */
export async function reissueInvite(db: Db, userId: number, now = new Date()): Promise<IssuedInvite> {
  const [user] = await db
    .select({ login: users.login, waiting: sql<boolean>`${userInvites.userId} is not null` })
    .from(users)
    .leftJoin(userInvites, and(eq(userInvites.userId, users.id), isNull(userInvites.acceptedAt)))
    .where(eq(users.id, userId));
  if (!user) throw notFound(THINGS.user, userId);
  // Only over an invite still waiting: one accepted meanwhile is not reopened.
  const invite = user.waiting ? await putInvite(db, userId, now) : null;
  if (!invite) throw new ServiceError('conflict', noInviteWaiting(user.login));
  return invite;
}

/** A password set by hand (a reset, the CLI) makes a waiting invite pointless: it stops working. */
export async function dropWaitingInvite(db: Db | Tx, userId: number): Promise<void> {
  await db.delete(userInvites).where(and(eq(userInvites.userId, userId), isNull(userInvites.acceptedAt)));
}

export type InviteState =
  | { state: 'valid'; userId: number; login: string; expiresAt: Date }
  | { state: 'expired' | 'used' | 'unknown' | 'inactive' };

/** What a link's token stands for now. A replaced invite's old token is unknown, like a made-up one. */
export async function inviteState(db: Db, token: string, now = new Date()): Promise<InviteState> {
  const [row] = await db
    .select({
      userId: users.id,
      login: users.login,
      active: users.isActive,
      expiresAt: userInvites.expiresAt,
      acceptedAt: userInvites.acceptedAt,
    })
    .from(userInvites)
    .innerJoin(users, eq(users.id, userInvites.userId))
    .where(eq(userInvites.tokenHash, sha256(token)));
  if (!row) return { state: 'unknown' };
  if (row.acceptedAt) return { state: 'used' };
  if (row.expiresAt <= now) return { state: 'expired' };
  if (!row.active) return { state: 'inactive' };
  return { state: 'valid', userId: row.userId, login: row.login, expiresAt: row.expiresAt };
}

/** Why a link no longer works, in both languages. */
export const INVITE_REFUSALS: Record<Exclude<InviteState['state'], 'valid'>, LocalizedText> = {
  expired: {
    en: 'This invite link has expired. Ask an administrator for a new one.',
    ru: 'Срок действия ссылки-приглашения истёк. Попросите администратора выслать новую.',
  },
  used: {
    en: 'This invite link has already been used. Log in with the password you set.',
    ru: 'Эта ссылка-приглашение уже использована. Войдите с паролем, который вы задали.',
  },
  unknown: {
    en: 'This invite link is not valid: it is mistyped, or a newer invite has replaced it.',
    ru: 'Ссылка-приглашение недействительна: в ней ошибка или её заменило более новое приглашение.',
  },
  inactive: {
    en: 'This account is deactivated. Ask an administrator.',
    ru: 'Эта учётная запись отключена. Обратитесь к администратору.',
  },
};

/** A link that cannot be accepted (any more): its state says why. */
export class InviteRefused extends ServiceError {
  constructor(readonly state: Exclude<InviteState['state'], 'valid'>) {
    super(state === 'unknown' ? 'not_found' : 'conflict', INVITE_REFUSALS[state]);
  }
}

/**
 * Sets the invited user's password and uses the invite up, in one transaction: of two
 * acceptances at once, one wins and the other is told the link is used.
 */
export async function acceptInvite(
  db: Db,
  token: string,
  password: string,
  now = new Date(),
): Promise<{ userId: number; login: string }> {
  validatePassword(password);
  const passwordHash = await hashPassword(password);
  const accepted = await db.transaction(async (tx) => {
    const [invite] = await tx
      .update(userInvites)
      .set({ acceptedAt: now })
      .where(
        and(eq(userInvites.tokenHash, sha256(token)), isNull(userInvites.acceptedAt), gt(userInvites.expiresAt, now)),
      )
      .returning({ userId: userInvites.userId });
    if (!invite) return null;
    const [user] = await tx
      .update(users)
      .set({ passwordHash, updatedAt: now })
      .where(and(eq(users.id, invite.userId), eq(users.isActive, true)))
      .returning({ id: users.id, login: users.login });
    if (!user) throw new InviteRefused('inactive');
    await tx.delete(sessions).where(eq(sessions.userId, user.id));
    return { userId: user.id, login: user.login };
  });
  if (accepted) return accepted;
  const state = await inviteState(db, token, now);
  throw new InviteRefused(state.state === 'valid' ? 'used' : state.state);
}
