// The Oso policy (api/authz/policy.polar) over the built-in roles and template-scoped grants.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  Authz,
  decided,
  decidedAnywhere,
  decidedTemplates,
  System,
  Template,
  type Grants,
} from '../../api/authz/index.js';
import { ALL_PERMISSIONS, BUILTIN_ROLES, type Permission } from '../../domain/permissions.js';

let authz: Authz;
beforeAll(async () => {
  authz = await Authz.load();
});

const globally = (permissions: Permission[]): Grants => ({ global: new Set(permissions), byTemplate: new Map() });
const scoped = (templateId: number, permissions: Permission[]): Grants => ({
  global: new Set(),
  byTemplate: new Map([[templateId, new Set(permissions)]]),
});

describe('the policy', () => {
  it('gives each built-in role exactly its permissions', async () => {
    for (const [role, permissions] of Object.entries(BUILTIN_ROLES)) {
      const decisions = await authz.decide(globally(permissions));
      for (const permission of ALL_PERMISSIONS) {
        expect(decided(decisions, permission, 1), `${role} ${permission}`).toBe(permissions.includes(permission));
      }
    }
  });

  it('scopes an operator grant to its template only', async () => {
    const decisions = await authz.decide(scoped(7, BUILTIN_ROLES.operator));
    expect(decided(decisions, 'processes.manage', 7)).toBe(true);
    expect(decided(decisions, 'processes.manage', 8)).toBe(false);
    expect(decided(decisions, 'processes.manage')).toBe(false);
    expect(decidedAnywhere(decisions, 'processes.manage')).toBe(true);
    expect(decidedTemplates(decisions, 'processes.view')).toEqual([7]);
  });

  it('never lets a template-scoped grant carry machine, user or template-editing permissions', async () => {
    const decisions = await authz.decide(scoped(7, BUILTIN_ROLES.admin));
    for (const permission of ['machines.view', 'machines.manage', 'users.manage', 'templates.manage'] as const) {
      expect(decided(decisions, permission, 7)).toBe(false);
      expect(await authz.isAllowed(scoped(7, BUILTIN_ROLES.admin), permission, new System())).toBe(false);
    }
    expect(decided(decisions, 'processes.delete', 7)).toBe(true);
  });

  it('needs the template in sight for any process permission', async () => {
    const grants = scoped(3, ['processes.view', 'processes.manage']);
    expect(await authz.isAllowed(grants, 'processes.manage', new Template(3))).toBe(false);
    const withView: Grants = { global: new Set(['templates.view']), byTemplate: grants.byTemplate };
    expect(await authz.isAllowed(withView, 'processes.manage', new Template(3))).toBe(true);
    expect(decidedTemplates(await authz.decide(withView), 'templates.view')).toBe('all');
    expect(decidedTemplates(await authz.decide(withView), 'processes.view')).toEqual([3]);
  });

  it('allows nothing without grants', async () => {
    const decisions = await authz.decide(globally([]));
    for (const permission of ALL_PERMISSIONS) expect(decidedAnywhere(decisions, permission)).toBe(false);
  });
});
