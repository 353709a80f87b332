// Users who sign in through an OpenID Provider: found by (issuer, subject), created on their
// first sign-in, and their global roles re-derived from their groups at every sign-in.
// Template grants an admin gave them stay: the provider knows groups, not templates.
import { and, eq, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { roleGrants, roles, users } from '../db/schema.js';
import { rolesForGroups, type RoleMapEntry } from '../lib/oidc-config.js';
import type { SessionUser } from './accounts.js';

/** What the provider vouched for, read off the ID token (and userinfo). */
export interface ExternalIdentity {
  issuer: string;
  subject: string;
  /** preferred_username, else email, else the subject: only a wish for the login. */
  preferredLogin: string;
  name: string;
  groups: string[];
}

export type SsoRefusal = 'no_role' | 'inactive' | 'unknown_role';

export type SsoOutcome =
  | { ok: true; user: SessionUser; created: boolean; roles: string[] }
  | { ok: false; reason: SsoRefusal; login: string | null; userId: number | null; detail?: string };

// SSO users have no password: a value no scrypt hash can equal, so POST /login never lets them in.
const NO_PASSWORD = '!sso';

/** The wish made a valid login: disallowed characters become '-', at most 64 characters. */
export function loginFromWish(wish: string): string {
  const cleaned = wish
    .normalize('NFKC')
    .replace(/[^A-Za-z0-9._@-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return cleaned === '' ? 'sso-user' : cleaned;
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * A login nobody holds yet: the wish itself, else the wish with `-sso`, `-sso2`, … appended.
 * A local user who already has the name keeps it; the SSO user never takes over their account.
 */
async function freeLogin(tx: Tx, wish: string): Promise<string> {
  const base = loginFromWish(wish);
  for (let n = 1; n < 1000; n++) {
    const suffix = n === 1 ? '' : n === 2 ? '-sso' : `-sso${n - 1}`;
    const candidate = `${base.slice(0, 64 - suffix.length)}${suffix}`;
    const [taken] = await tx.select({ id: users.id }).from(users).where(eq(users.login, candidate));
    if (!taken) return candidate;
  }
  throw new Error(`no free login for ${base}`);
}

/** The names of the role map that no role has (yet): the boot check reports them. */
export async function unknownMappedRoles(db: Db, roleMap: readonly RoleMapEntry[]): Promise<string[]> {
  const wanted = [...new Set(roleMap.map((e) => e.role))];
  if (wanted.length === 0) return [];
  const found = new Set(
    (await db.select({ name: roles.name }).from(roles).where(inArray(roles.name, wanted))).map((r) => r.name),
  );
  return wanted.filter((name) => !found.has(name));
}

/**
 * Signs in (or first creates) the user the provider vouched for. Refused when the groups map to
 * no role, when the user was deactivated, or when a mapped role was deleted since boot.
 */
export async function signInExternal(
  db: Db,
  identity: ExternalIdentity,
  roleMap: readonly RoleMapEntry[],
): Promise<SsoOutcome> {
  const roleNames = rolesForGroups(roleMap, identity.groups);
  return db.transaction(async (tx) => {
    const [existing] = await tx
      .select()
      .from(users)
      .where(and(eq(users.oidcIssuer, identity.issuer), eq(users.oidcSubject, identity.subject)));
    if (existing && !existing.isActive)
      return { ok: false, reason: 'inactive', login: existing.login, userId: existing.id } as const;
    if (roleNames.length === 0) {
      // Out of every mapped group: the global roles go now, so API tokens made earlier lose them too.
      if (existing)
        await tx.delete(roleGrants).where(and(eq(roleGrants.userId, existing.id), isNull(roleGrants.templateId)));
      return { ok: false, reason: 'no_role', login: existing?.login ?? null, userId: existing?.id ?? null } as const;
    }
    const found = await tx.select().from(roles).where(inArray(roles.name, roleNames));
    const missing = roleNames.filter((name) => !found.some((r) => r.name === name));
    if (missing.length > 0)
      return {
        ok: false,
        reason: 'unknown_role',
        login: existing?.login ?? null,
        userId: existing?.id ?? null,
        detail: missing.join(', '),
      } as const;
    let user = existing;
    if (!user) {
      const login = await freeLogin(tx, identity.preferredLogin);
      [user] = await tx
        .insert(users)
        .values({
          login,
          name: identity.name.slice(0, 200),
          passwordHash: NO_PASSWORD,
          oidcIssuer: identity.issuer,
          oidcSubject: identity.subject,
        })
        .returning();
    }
    const userId = user!.id;
    // The provider is the authority on global roles: they are replaced, not merged.
    await tx.delete(roleGrants).where(and(eq(roleGrants.userId, userId), isNull(roleGrants.templateId)));
    await tx.insert(roleGrants).values(found.map((role) => ({ userId, roleId: role.id, templateId: null })));
    return {
      ok: true,
      user: { id: userId, login: user!.login, locale: user!.locale === 'en' ? 'en' : 'ru' },
      created: !existing,
      roles: found.map((r) => r.name).sort(),
    } as const;
  });
}
