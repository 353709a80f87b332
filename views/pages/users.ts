// Administration → Users: every account with its grants, last login and state; creating
// one (its generated password or invite link shown once), a new invite link for one not
// accepted yet, deactivating, resetting a password, and granting or revoking roles
// globally or per template.
import type { GrantView } from '../../services/roles.js';
import type { UserView } from '../../services/users.js';
import { flash } from '../fragments/flash.js';
import { html, type Html } from '../html.js';
import { translator, type Translate } from '../i18n.js';
import { layout, type PageContext } from '../layout.js';
import { adminTabs } from './audit.js';

export interface UsersPageData {
  users: UserView[];
  grants: GrantView[];
  roles: Array<{ id: number; name: string }>;
  templates: Array<{ id: number; name: string }>;
  /** A password just generated (for a new user or a reset), or an invite link just issued, shown this once. */
  shown?:
    | { login: string; password: string; kind: 'created' | 'reset' }
    | { login: string; inviteUrl: string; expiresAt: Date; kind: 'invited' | 'reinvited' };
  /** Why the last action was refused. */
  error?: string;
}

const minutes = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')} UTC`;

function when(t: Translate, iso: string | null): Html {
  return iso
    ? html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')}</time>`
    : html`<span class="muted">${t('tokNever')}</span>`;
}

/** The one answer that carries a secret: a password or an invite link, in a field made for copying. */
function shownSecret(t: Translate, shown: NonNullable<UsersPageData['shown']>): Html {
  if ('password' in shown)
    return html`<section class="card" id="one-time-password" role="status">
      <p>${t(shown.kind === 'created' ? 'usrCreated' : 'usrReset').replace('{login}', shown.login)}</p>
      <input readonly class="token" value="${shown.password}" aria-label="${t('password')}" onfocus="this.select()" />
    </section>`;
  const expires = minutes(shown.expiresAt.toISOString());
  return html`<section class="card" id="invite-link" role="status">
    <p>
      ${t(shown.kind === 'invited' ? 'usrInvited' : 'usrReinvited')
        .replace('{login}', shown.login)
        .replace('{expires}', expires)}
    </p>
    <input readonly class="token" value="${shown.inviteUrl}" aria-label="${t('usrInviteLink')}" onfocus="this.select()" />
  </section>`;
}

/** A waiting invite beside the user's state, with the way to a new link. */
function inviteCell(t: Translate, csrf: Html, user: UserView, now: Date): Html {
  if (!user.invite) return html``;
  const expired = new Date(user.invite.expiresAt) <= now;
  return html`<span class="muted invite-state"
      >${expired ? t('usrInviteExpired') : t('usrInviteWaiting').replace('{expires}', minutes(user.invite.expiresAt))}</span
    >
    <form method="post" action="/admin/users/${user.id}/invite" class="inline">
      ${csrf}<button class="small">${t('usrNewInvite')}</button>
    </form>`;
}

/** Role and template pickers; a new user may start with no role (`optional`). */
function roleFields(t: Translate, data: UsersPageData, optional = false): Html {
  return html`<label
      >${t('admRoleName')}<select name="roleId" ${optional ? '' : html`required`}>
        ${optional ? html`<option value="">${t('usrNoRole')}</option>` : ''}
        ${data.roles.map((role) => html`<option value="${role.id}">${role.name}</option>`)}
      </select></label
    >
    <label
      >${t('admTemplate')}<select name="templateId">
        <option value="">${t('admAllTemplates')}</option>
        ${data.templates.map((template) => html`<option value="${template.id}">${template.name}</option>`)}
      </select></label
    >`;
}

function grantList(t: Translate, csrf: Html, grants: GrantView[]): Html {
  if (grants.length === 0) return html`<span class="muted">${t('usrNoRole')}</span>`;
  return html`<ul class="grants">
    ${grants.map(
      (grant) =>
        html`<li data-grant-id="${grant.id}">
          <strong>${grant.roleName}</strong>
          ${
            grant.templateId === null
              ? html`<span class="muted">${t('admAllTemplates')}</span>`
              : html`${grant.templateName ?? ''} <span class="muted">#${grant.templateId}</span>`
          }
          <form method="post" action="/admin/users/grants/${grant.id}/revoke" class="inline">
            ${csrf}<button class="danger small">${t('revoke')}</button>
          </form>
        </li>`,
    )}
  </ul>`;
}

export function usersPage(ctx: PageContext, data: UsersPageData): Html {
  const t = translator(ctx.locale);
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.csrfToken ?? ''}" />`;
  const grantsOf = (userId: number) => data.grants.filter((g) => g.userId === userId);
  const shown = data.shown;
  const now = new Date();
  return layout(
    { ...ctx, section: 'admin' },
    t('usrUsers'),
    html`<h1>${t('admSection')}</h1>
      ${adminTabs(ctx, 'users')} ${data.error ? flash(data.error) : ''}
      ${shown ? shownSecret(t, shown) : ''}
      <table class="grid" id="users">
        <thead>
          <tr>
            <th>${t('loginField')}</th>
            <th>${t('usrName')}</th>
            <th>${t('admRoles')}</th>
            <th>${t('usrLastLogin')}</th>
            <th>${t('usrActive')}</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          ${data.users.map(
            (user) =>
              html`<tr data-user-id="${user.id}" data-login="${user.login}">
                <td><strong>${user.login}</strong></td>
                <td>${user.name}</td>
                <td>${grantList(t, csrf, grantsOf(user.id))}</td>
                <td>${when(t, user.lastLoginAt)}</td>
                <td>
                  <span class="badge ${user.active ? 'running' : 'disabled'}"
                    >${user.active ? t('usrYes') : t('usrNo')}</span
                  >
                  ${inviteCell(t, csrf, user, now)}
                </td>
                <td>
                  <form method="post" action="/admin/users/${user.id}/active" class="inline">
                    ${csrf}<input type="hidden" name="active" value="${user.active ? 'false' : 'true'}" /><button
                      class="${user.active ? 'danger small' : 'small'}"
                    >
                      ${user.active ? t('usrDeactivate') : t('usrReactivate')}
                    </button>
                  </form>
                  <form method="post" action="/admin/users/${user.id}/password" class="inline">
                    ${csrf}<button class="small">${t('usrResetPassword')}</button>
                  </form>
                  <details>
                    <summary>${t('usrGrantRole')}</summary>
                    <form method="post" action="/admin/users/${user.id}/grants" class="stack">
                      ${csrf} ${roleFields(t, data)}
                      <button class="primary">${t('admGrant')}</button>
                    </form>
                  </details>
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
      <form method="post" action="/admin/users" class="card stack" id="create-user">
        <h2>${t('usrCreate')}</h2>
        ${csrf}
        <label>${t('loginField')}<input name="login" required maxlength="64" autocomplete="off" /></label>
        <label>${t('usrName')}<input name="name" maxlength="200" autocomplete="off" /></label>
        ${roleFields(t, data, true)}
        <fieldset class="choice">
          <legend>${t('usrCredential')}</legend>
          <label><input type="radio" name="credential" value="password" checked /> ${t('usrByPassword')}</label>
          <label><input type="radio" name="credential" value="invite" /> ${t('usrByInvite')}</label>
        </fieldset>
        <button class="primary">${t('usrCreate')}</button>
      </form>`,
  );
}
