// Administration → Roles: built-in and custom roles with their permissions (custom ones
// editable), and who holds which role, globally or for one template.
import { ALL_PERMISSIONS, PERMISSIONS, type Permission } from '../../domain/permissions.js';
import type { GrantView, RoleView } from '../../services/roles.js';
import { html, type Html } from '../html.js';
import { translator } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { adminTabs } from './audit.js';

export interface RolesPageData {
  roles: RoleView[];
  grants: GrantView[];
  users: Array<{ id: number; login: string }>;
  templates: Array<{ id: number; name: string }>;
}

function permissionBoxes(ctx: PageContext, checked: readonly Permission[]): Html {
  return html`<fieldset class="permissions">${ALL_PERMISSIONS.map(
    (permission) =>
      html`<label class="check"><input type="checkbox" name="permissions" value="${permission}"${checked.includes(permission) ? html` checked` : ''}> <code>${permission}</code> <span class="muted">${PERMISSIONS[permission][ctx.locale]}</span></label>`,
  )}</fieldset>`;
}

export function rolesPage(ctx: PageContext, data: RolesPageData): Html {
  const t = translator(ctx.locale);
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}">`;
  return layout(
    { ...ctx, section: 'admin' },
    t('admRoles'),
    html`<h1>${t('admSection')}</h1>
${adminTabs(ctx, 'roles')}
<table class="grid" id="roles">
  <thead><tr><th>${t('admRoleName')}</th><th>${t('admPermissions')}</th><th class="num">${t('admGrantCount')}</th><th></th></tr></thead>
  <tbody>
  ${data.roles.map(
    (role) => html`<tr data-role-id="${role.id}">
    <td><strong>${role.name}</strong>${role.builtin ? html` <span class="badge">${t('admBuiltin')}</span>` : ''}<br><span class="muted">${role.description}</span></td>
    <td>${role.permissions.map((p) => html`<code>${p}</code> `)}</td>
    <td class="num">${role.grants}</td>
    <td>${
      role.builtin
        ? ''
        : html`<details><summary>${t('edit')}</summary>
      <form method="post" action="/admin/roles/${role.id}" class="stack">${csrf}
        <label>${t('admRoleName')}<input name="name" required maxlength="64" value="${role.name}"></label>
        <label>${t('description')}<input name="description" maxlength="1000" value="${role.description}"></label>
        ${permissionBoxes(ctx, role.permissions)}
        <button class="primary">${t('save')}</button>
      </form>
      <form method="post" action="/admin/roles/${role.id}/delete" class="inline">${csrf}<button class="danger small">${t('delete')}</button></form>
    </details>`
    }</td>
  </tr>`,
  )}
  </tbody>
</table>
<details class="card"><summary>${t('admCreateRole')}</summary>
<form method="post" action="/admin/roles" class="stack" id="create-role">${csrf}
  <label>${t('admRoleName')}<input name="name" required maxlength="64"></label>
  <label>${t('description')}<input name="description" maxlength="1000"></label>
  ${permissionBoxes(ctx, [])}
  <button class="primary">${t('admCreateRole')}</button>
</form>
</details>
<h2>${t('admGrants')}</h2>
<p class="muted">${t('admScopeNote')}</p>
${
  data.grants.length === 0
    ? html`<p class="empty">${t('admNoGrants')}</p>`
    : html`<table class="grid" id="grants">
  <thead><tr><th>${t('admUser')}</th><th>${t('admRoleName')}</th><th>${t('admTemplate')}</th><th></th></tr></thead>
  <tbody>
  ${data.grants.map(
    (grant) => html`<tr data-grant-id="${grant.id}">
    <td>${grant.login}</td>
    <td>${grant.roleName}</td>
    <td>${grant.templateId === null ? html`<span class="muted">${t('admAllTemplates')}</span>` : html`${grant.templateName ?? ''} <span class="muted">#${grant.templateId}</span>`}</td>
    <td><form method="post" action="/admin/grants/${grant.id}/revoke" class="inline">${csrf}<button class="danger small">${t('revoke')}</button></form></td>
  </tr>`,
  )}
  </tbody>
</table>`
}
<form method="post" action="/admin/grants" class="card stack" id="grant-role">${csrf}
  <label>${t('admUser')}<select name="login" required>${data.users.map((user) => html`<option value="${user.login}">${user.login}</option>`)}</select></label>
  <label>${t('admRoleName')}<select name="roleId" required>${data.roles.map((role) => html`<option value="${role.id}">${role.name}</option>`)}</select></label>
  <label>${t('admTemplate')}<select name="templateId"><option value="">${t('admAllTemplates')}</option>${data.templates.map(
    (template) => html`<option value="${template.id}">${template.name}</option>`,
  )}</select></label>
  <button class="primary">${t('admGrant')}</button>
</form>`,
  );
}
