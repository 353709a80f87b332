// The Oso side of authorization: loads policy.polar and turns a user's grants into the
// decisions the policy makes for them. Decisions are computed once per distinct set of
// grants (the only input the policy reads) and cached, so `can()` stays synchronous
// and cheap while every answer still comes from the policy.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Oso } from 'oso';
import { ALL_PERMISSIONS, TEMPLATE_SCOPED, type Permission } from '../../domain/permissions.js';

export const POLICY_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'policy.polar');

/** The actor as the policy sees it. */
export class User {
  constructor(
    readonly global: Permission[],
    private readonly scoped: ReadonlyMap<number, ReadonlySet<Permission>>,
  ) {}

  grantedFor(templateId: number | null): Permission[] {
    return templateId === null ? [] : [...(this.scoped.get(templateId) ?? [])];
  }
}

/** A template and its processes; id null: any template the user holds no grant for. */
export class Template {
  constructor(readonly id: number | null) {}
}

/** What belongs to no template: machines, users, roles, audit, creating templates. */
export class System {}

export interface Grants {
  global: ReadonlySet<Permission>;
  byTemplate: ReadonlyMap<number, ReadonlySet<Permission>>;
}

/** What the policy allows one set of grants; read by `can()`, `visibleTemplates()`. */
export interface Decisions {
  /** Global-only permissions allowed (on System). */
  system: ReadonlySet<Permission>;
  /** Template permissions allowed on every template (decided for a template without grants). */
  everyTemplate: ReadonlySet<Permission>;
  /** Template permissions allowed on the templates the user has grants for. */
  byTemplate: ReadonlyMap<number, ReadonlySet<Permission>>;
}

const SCOPABLE = ALL_PERMISSIONS.filter((p) => TEMPLATE_SCOPED.has(p));
const GLOBAL_ONLY = ALL_PERMISSIONS.filter((p) => !TEMPLATE_SCOPED.has(p));

export class Authz {
  private readonly cache = new Map<string, Decisions>();

  private constructor(private readonly oso: Oso) {}

  static async load(policyFile = POLICY_FILE): Promise<Authz> {
    const oso = new Oso();
    oso.registerClass(User);
    oso.registerClass(Template);
    oso.registerClass(System);
    await oso.loadFiles([policyFile]);
    const authz = new Authz(oso);
    // The first queries of a fresh policy VM are slow (~10 ms each); pay that at boot.
    await authz.decide({ global: new Set(ALL_PERMISSIONS), byTemplate: new Map([[0, new Set(SCOPABLE)]]) });
    authz.cache.clear();
    return authz;
  }

  /** One policy question, asked directly (tests, and checks outside a request). */
  isAllowed(grants: Grants, permission: Permission, resource: Template | System): Promise<boolean> {
    return this.oso.isAllowed(actorOf(grants), permission, resource);
  }

  async decide(grants: Grants): Promise<Decisions> {
    const key = cacheKey(grants);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const actor = actorOf(grants);
    const allowed = async (permissions: Permission[], resource: Template | System) => {
      const out = new Set<Permission>();
      for (const permission of permissions)
        if (await this.oso.isAllowed(actor, permission, resource)) out.add(permission);
      return out;
    };
    const byTemplate = new Map<number, ReadonlySet<Permission>>();
    for (const templateId of grants.byTemplate.keys())
      byTemplate.set(templateId, await allowed(SCOPABLE, new Template(templateId)));
    const decisions: Decisions = {
      system: await allowed(GLOBAL_ONLY, new System()),
      everyTemplate: await allowed(SCOPABLE, new Template(null)),
      byTemplate,
    };
    // Bounded: distinct grant sets are few (one per role combination), but never grow without end.
    if (this.cache.size >= 1000) this.cache.clear();
    this.cache.set(key, decisions);
    return decisions;
  }
}

function actorOf(grants: Grants): User {
  return new User([...grants.global], grants.byTemplate);
}

function cacheKey(grants: Grants): string {
  const scoped = [...grants.byTemplate.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, set]) => `${id}:${[...set].sort().join(',')}`);
  return `${[...grants.global].sort().join(',')}|${scoped.join(';')}`;
}

/** The policy's answer for one check, from precomputed decisions. */
export function decided(decisions: Decisions, permission: Permission, templateId?: number): boolean {
  if (!TEMPLATE_SCOPED.has(permission)) return decisions.system.has(permission);
  if (decisions.everyTemplate.has(permission)) return true;
  return templateId !== undefined && (decisions.byTemplate.get(templateId)?.has(permission) ?? false);
}

export function decidedAnywhere(decisions: Decisions, permission: Permission): boolean {
  if (decided(decisions, permission)) return true;
  for (const set of decisions.byTemplate.values()) if (set.has(permission)) return true;
  return false;
}

/** Template ids on which the permission is allowed, or `all`; handed to SQL, never applied per row. */
export function decidedTemplates(decisions: Decisions, permission: Permission): number[] | 'all' {
  if (decided(decisions, permission)) return 'all';
  return [...decisions.byTemplate.entries()].filter(([, set]) => set.has(permission)).map(([id]) => id);
}
