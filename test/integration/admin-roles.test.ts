// Administration → Roles through the real app: the "Grants" column counts who holds each
// role, the same grants the table below it lists.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRole } from '../../services/roles.js';
import { createTemplate } from '../../services/templates.js';
import { makeActor, startApp, viaSession, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, type Stack } from '../support/stack.js';

let stack: Stack;
let web: TestApp;
let admin: Actor;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  web = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'admin');
});
afterAll(async () => {
  await web?.close();
  await stack?.close();
});

/** The roles page as the admin sees it: each role's "Grants" count, and how many grant rows name it. */
async function rolesPage(): Promise<{ counts: Map<string, number>; listed: Map<string, number> }> {
  const response = await viaSession(web.app, admin, { method: 'GET', url: '/admin/roles' });
  expect(response.statusCode).toBe(200);
  const counts = new Map<string, number>();
  for (const m of response.body.matchAll(
    /<tr data-role-id="\d+">\s*<td>\s*<strong>([^<]+)<\/strong\s*>[\s\S]*?<td class="num">(\d+)<\/td>/g,
  )) {
    counts.set(m[1]!, Number(m[2]));
  }
  const listed = new Map<string, number>();
  for (const m of response.body.matchAll(/<tr data-grant-id="\d+">\s*<td>[^<]*<\/td>\s*<td>([^<]+)<\/td>/g)) {
    listed.set(m[1]!, (listed.get(m[1]!) ?? 0) + 1);
  }
  return { counts, listed };
}

describe('the roles page', () => {
  it("counts each role's grants, as many as the grants table lists for it", async () => {
    const before = await rolesPage();
    expect(before.counts.get('admin')).toBeGreaterThanOrEqual(1);

    // One more grant of each built-in role, each to a new user; and a custom role held once,
    // for one template (a scoped grant counts too).
    for (const role of ['viewer', 'operator', 'admin']) await makeActor(stack, [{ role }], `count-${role}`);
    const custom = await createRole(stack.database.db, { name: `counted-${uid()}`, permissions: ['processes.view'] });
    const template = await createTemplate(stack.database.db, { name: `counted ${uid()}`, command: 'true' });
    await makeActor(stack, [{ role: custom.name, templateId: template.id }], 'count-custom');

    const after = await rolesPage();
    for (const role of ['viewer', 'operator', 'admin']) {
      expect(after.counts.get(role), role).toBe((before.counts.get(role) ?? 0) + 1);
    }
    expect(after.counts.get(custom.name)).toBe(1);
    // Every role's count is the number of grants the page lists for it.
    expect(after.counts.size).toBeGreaterThanOrEqual(4);
    for (const [role, count] of after.counts) expect(count, role).toBe(after.listed.get(role) ?? 0);
  });
});
