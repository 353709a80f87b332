// Roles (named sets of permissions an admin edits) and who holds them, globally or for
// one template (DESIGN §3). Built-in roles are fixed: the seed rewrites them at start.
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { roleGrants, roles, templates, users } from '../db/schema.js';
import { ALL_PERMISSIONS, type Permission } from '../domain/permissions.js';
import { invalid, notFound, ServiceError, THINGS } from './errors.js';
import { ensureUserAdminLeft, LastAdminError, lockUserAdmins } from './users.js';
import { isPlainObject, optionalText, pgCode, rejectUnknown, text } from './validate.js';

export interface RoleView {
  id: number;
  name: string;
  description: string;
  permissions: Permission[];
  builtin: boolean;
  grants: number;
}

export interface GrantView {
  id: number;
  userId: number;
  login: string;
  roleId: number;
  roleName: string;
  templateId: number | null;
  templateName: string | null;
}

const ROLE_NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,63}$/u;

function validPermissions(value: unknown): Permission[] {
  if (!Array.isArray(value))
    throw invalid('permissions', {
      en: 'permissions is a list of permission names.',
      ru: 'Права — список имён прав.',
    });
  const out = new Set<Permission>();
  for (const item of value) {
    if (typeof item !== 'string' || !(ALL_PERMISSIONS as string[]).includes(item)) {
      throw invalid('permissions', {
        en: `${JSON.stringify(item)} is not a permission; known: ${ALL_PERMISSIONS.join(', ')}.`,
        ru: `${JSON.stringify(item)} — не право; известны: ${ALL_PERMISSIONS.join(', ')}.`,
      });
    }
    out.add(item as Permission);
  }
  // Stored in the canonical order, so two equal roles read the same.
  return ALL_PERMISSIONS.filter((p) => out.has(p));
}

export function validateRole(body: unknown, mode: 'create' | 'patch'): Partial<typeof roles.$inferInsert> {
  if (!isPlainObject(body)) throw invalid('body', { en: 'A role is a JSON object.', ru: 'Роль — это JSON-объект.' });
  rejectUnknown(body, ['name', 'description', 'permissions']);
  const out: Partial<typeof roles.$inferInsert> = {};
  if (mode === 'create' && body.name === undefined)
    throw invalid('name', { en: 'name is required.', ru: 'Нужно имя.' });
  if (body.name !== undefined) {
    const name = text('name', typeof body.name === 'string' ? body.name.trim() : body.name, { min: 1, max: 64 });
    if (!ROLE_NAME.test(name))
      throw invalid('name', {
        en: 'A role name is letters, digits, spaces, ".", "_" or "-", up to 64 characters.',
        ru: 'Имя роли: буквы, цифры, пробелы, «.», «_» или «-», до 64 символов.',
      });
    out.name = name;
  }
  if (body.description !== undefined)
    out.description = optionalText('description', body.description, { max: 1000 }) ?? '';
  if (body.permissions !== undefined) out.permissions = validPermissions(body.permissions);
  else if (mode === 'create') out.permissions = [];
  return out;
}

export async function listRoles(db: Db): Promise<RoleView[]> {
  // A join, not a correlated subquery in the select list: drizzle writes a single-table
  // select's columns unqualified, so `role_id = id` inside such a subquery compared the
  // grant's role with the grant's own id and every role counted 0 grants.
  const rows = await db
    .select({ role: roles, grants: sql<number>`count(${roleGrants.id})::int` })
    .from(roles)
    .leftJoin(roleGrants, eq(roleGrants.roleId, roles.id))
    .groupBy(roles.id)
    .orderBy(sql`${roles.builtin} desc`, asc(roles.name));
  return rows.map(({ role, grants }) => ({
    id: role.id,
    name: role.name,
    description: role.description,
    permissions: role.permissions as Permission[],
    builtin: role.builtin,
    grants,
  }));
}

export async function getRole(db: Db, id: number): Promise<RoleView> {
  const role = (await listRoles(db)).find((r) => r.id === id);
  if (!role) throw notFound(THINGS.role, id);
  return role;
}

const nameTaken = (name: string) =>
  new ServiceError(
    'conflict',
    { en: `A role named "${name}" already exists.`, ru: `Роль с именем «${name}» уже есть.` },
    'name',
  );

export async function createRole(db: Db, body: unknown): Promise<RoleView> {
  const values = validateRole(body, 'create') as typeof roles.$inferInsert;
  const [row] = await db
    .insert(roles)
    .values({ ...values, builtin: false })
    .onConflictDoNothing({ target: roles.name })
    .returning();
  if (!row) throw nameTaken(values.name);
  return getRole(db, row.id);
}

async function customRole(db: Db, id: number) {
  const [role] = await db.select().from(roles).where(eq(roles.id, id));
  if (!role) throw notFound(THINGS.role, id);
  if (role.builtin)
    throw new ServiceError('conflict', {
      en: `${role.name} is a built-in role and cannot change; create a custom role instead.`,
      ru: `«${role.name}» — встроенная роль, её нельзя менять; создайте свою роль.`,
    });
  return role;
}

export async function updateRole(db: Db, id: number, body: unknown): Promise<RoleView> {
  const values = validateRole(body, 'patch');
  await customRole(db, id);
  try {
    if (Object.keys(values).length > 0) await db.update(roles).set(values).where(eq(roles.id, id));
  } catch (error) {
    if (pgCode(error) === '23505') throw nameTaken(values.name ?? '');
    throw error;
  }
  return getRole(db, id);
}

/** Refused while the role is granted: revoking is a decision to make grant by grant. */
export async function deleteRole(db: Db, id: number): Promise<void> {
  const role = await customRole(db, id);
  const [used] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(roleGrants)
    .where(eq(roleGrants.roleId, id));
  if ((used?.n ?? 0) > 0)
    throw new ServiceError('conflict', {
      en: `Role ${role.name} is granted ${used!.n} time(s); revoke those grants first.`,
      ru: `Роль ${role.name} назначена (${used!.n}); сначала отзовите эти назначения.`,
    });
  await db.delete(roles).where(eq(roles.id, id));
}

export async function listGrants(db: Db): Promise<GrantView[]> {
  return db
    .select({
      id: roleGrants.id,
      userId: users.id,
      login: users.login,
      roleId: roles.id,
      roleName: roles.name,
      templateId: roleGrants.templateId,
      templateName: templates.name,
    })
    .from(roleGrants)
    .innerJoin(users, eq(users.id, roleGrants.userId))
    .innerJoin(roles, eq(roles.id, roleGrants.roleId))
    .leftJoin(templates, eq(templates.id, roleGrants.templateId))
    .orderBy(asc(users.login), asc(roles.name), asc(roleGrants.templateId));
}

export async function listUsers(db: Db): Promise<Array<{ id: number; login: string; isActive: boolean }>> {
  return db
    .select({ id: users.id, login: users.login, isActive: users.isActive })
    .from(users)
    .orderBy(asc(users.login));
}

export async function grant(
  db: Db,
  input: { login: unknown; roleId: unknown; templateId?: unknown },
): Promise<GrantView> {
  const login = text('login', input.login, { min: 1, max: 64 });
  const [user] = await db.select().from(users).where(eq(users.login, login));
  if (!user) throw invalid('login', { en: `No user ${login}.`, ru: `Нет пользователя ${login}.` });
  if (typeof input.roleId !== 'number' || !Number.isInteger(input.roleId))
    throw invalid('roleId', { en: 'roleId is a role id.', ru: 'roleId — номер роли.' });
  const [role] = await db.select().from(roles).where(eq(roles.id, input.roleId));
  if (!role) throw invalid('roleId', { en: `No role ${input.roleId}.`, ru: `Нет роли ${input.roleId}.` });
  let templateId: number | null = null;
  if (input.templateId !== undefined && input.templateId !== null) {
    if (typeof input.templateId !== 'number' || !Number.isInteger(input.templateId))
      throw invalid('templateId', { en: 'templateId is a template id.', ru: 'templateId — номер шаблона.' });
    const [template] = await db.select({ id: templates.id }).from(templates).where(eq(templates.id, input.templateId));
    if (!template)
      throw invalid('templateId', { en: `No template ${input.templateId}.`, ru: `Нет шаблона ${input.templateId}.` });
    templateId = template.id;
  }
  await db.insert(roleGrants).values({ userId: user.id, roleId: role.id, templateId }).onConflictDoNothing();
  const [row] = await db
    .select({ id: roleGrants.id })
    .from(roleGrants)
    .where(
      and(
        eq(roleGrants.userId, user.id),
        eq(roleGrants.roleId, role.id),
        templateId === null ? isNull(roleGrants.templateId) : eq(roleGrants.templateId, templateId),
      ),
    );
  return (await listGrants(db)).find((g) => g.id === row!.id)!;
}

/** Refused when it would leave nobody able to manage users: an admin cannot lock everyone out. */
export async function revokeGrant(db: Db, grantId: number): Promise<GrantView> {
  const existing = (await listGrants(db)).find((g) => g.id === grantId);
  if (!existing) throw notFound(THINGS.grant, grantId);
  await db.transaction(async (tx) => {
    await lockUserAdmins(tx);
    await tx.delete(roleGrants).where(eq(roleGrants.id, grantId));
    await ensureUserAdminLeft(
      tx,
      () =>
        new LastAdminError({
          en: 'This is the last grant of users.manage; grant it to someone else first.',
          ru: 'Это последнее назначение с правом users.manage; сначала выдайте его кому-то ещё.',
        }),
    );
  });
  return existing;
}
