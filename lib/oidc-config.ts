// The single sign-on settings (TRAINYARD_OIDC_*, TRAINYARD_LOCAL_LOGIN, TRAINYARD_PUBLIC_URL),
// parsed by lib/config.ts at boot: each mistake is one line saying what to set. The role map
// parser is pure, so the unit tests and the boot check (api/server.ts) share it.
import { boolOf, ConfigError, read, type Env } from './config-read.js';

/** One `group=role` pair of TRAINYARD_OIDC_ROLE_MAP; group `*` stands for everyone who signs in. */
export interface RoleMapEntry {
  group: string;
  role: string;
}

export interface OidcConfig {
  /** The issuer identifier, exactly as the provider's discovery document states it. */
  issuer: string;
  clientId: string;
  clientSecret: string | null;
  /** Claim holding the user's groups; a dotted path reads a nested claim (realm_access.roles). */
  groupsClaim: string;
  roleMap: RoleMapEntry[];
  scopes: string;
  /** `<TRAINYARD_PUBLIC_URL>/auth/oidc/callback`, registered at the provider. */
  redirectUri: string;
}

export const OIDC_CALLBACK_PATH = '/auth/oidc/callback';
const ROLE_NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,63}$/u;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * `ml-admins=admin,ml-ops=operator,*=viewer` → entries. A group may appear more than once
 * (each entry grants one role); throws one ConfigError line per bad entry.
 */
export function parseRoleMap(raw: string, name = 'TRAINYARD_OIDC_ROLE_MAP'): RoleMapEntry[] {
  const problems: string[] = [];
  const entries: RoleMapEntry[] = [];
  for (const item of raw.split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const at = entry.lastIndexOf('=');
    const group = at < 0 ? '' : entry.slice(0, at).trim();
    const role = at < 0 ? '' : entry.slice(at + 1).trim();
    if (at < 0 || group === '' || role === '') {
      problems.push(`${name}: "${entry}" is not group=role; write it like ml-admins=admin,ml-ops=operator,*=viewer.`);
    } else if (!ROLE_NAME.test(role)) {
      problems.push(`${name}: "${role}" (for group "${group}") is not a role name.`);
    } else entries.push({ group, role });
  }
  if (problems.length === 0 && entries.length === 0)
    problems.push(`${name} is empty; map at least one group to a role, e.g. *=viewer.`);
  if (problems.length > 0) throw new ConfigError(problems);
  return entries;
}

/** The roles a user with these groups gets: every entry whose group they are in, and every `*` entry. */
export function rolesForGroups(roleMap: readonly RoleMapEntry[], groups: readonly string[]): string[] {
  const mine = new Set(groups);
  return [...new Set(roleMap.filter((e) => e.group === '*' || mine.has(e.group)).map((e) => e.role))];
}

function publicUrlOf(env: Env, problems: string[]): string | null {
  const raw = read(env, 'TRAINYARD_PUBLIC_URL');
  if (raw === undefined) return null;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // reported below
  }
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    problems.push(
      `TRAINYARD_PUBLIC_URL=${raw} is not a base URL; set it to the address browsers open, e.g. https://trainyard.example.com.`,
    );
    return null;
  }
  return url.href.replace(/\/+$/, '');
}

function issuerOf(raw: string, problems: string[]): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push(
      `TRAINYARD_OIDC_ISSUER=${raw} is not a URL; set it to the issuer, e.g. https://login.example.com/realms/ml.`,
    );
    return null;
  }
  // Plain http only on loopback (a provider on this machine, as the tests run one); anywhere
  // else the ID token and the code would travel in the clear.
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) return raw;
  problems.push(`TRAINYARD_OIDC_ISSUER=${raw} must be an https:// URL (http:// only on 127.0.0.1 or localhost).`);
  return null;
}

/** The SSO settings, or null when TRAINYARD_OIDC_ISSUER is unset; mistakes go to `problems`. */
export function oidcConfigOf(
  env: Env,
  problems: string[],
): { oidc: OidcConfig | null; localLogin: boolean; publicUrl: string | null } {
  const publicUrl = publicUrlOf(env, problems);
  let localLogin = true;
  try {
    localLogin = boolOf(env, 'TRAINYARD_LOCAL_LOGIN', true);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  const rawIssuer = read(env, 'TRAINYARD_OIDC_ISSUER');
  const clientId = read(env, 'TRAINYARD_OIDC_CLIENT_ID');
  const clientSecret = read(env, 'TRAINYARD_OIDC_CLIENT_SECRET') ?? null;
  const rawRoleMap = read(env, 'TRAINYARD_OIDC_ROLE_MAP');
  if (rawIssuer === undefined) {
    const orphans = ['TRAINYARD_OIDC_CLIENT_ID', 'TRAINYARD_OIDC_CLIENT_SECRET', 'TRAINYARD_OIDC_ROLE_MAP'].filter(
      (name) => read(env, name) !== undefined,
    );
    if (orphans.length > 0)
      problems.push(`${orphans.join(', ')} set without TRAINYARD_OIDC_ISSUER; set the issuer too, or unset them.`);
    if (!localLogin)
      problems.push(
        'TRAINYARD_LOCAL_LOGIN=false needs single sign-on (TRAINYARD_OIDC_ISSUER), else nobody can sign in.',
      );
    return { oidc: null, localLogin, publicUrl };
  }
  const issuer = issuerOf(rawIssuer, problems);
  if (clientId === undefined)
    problems.push('TRAINYARD_OIDC_CLIENT_ID is unset; set the client id registered at the provider.');
  if (publicUrl === null && read(env, 'TRAINYARD_PUBLIC_URL') === undefined)
    problems.push(
      'TRAINYARD_PUBLIC_URL is unset; single sign-on needs the address browsers open ' +
        '(the provider redirects to <it>/auth/oidc/callback).',
    );
  let roleMap: RoleMapEntry[] = [];
  if (rawRoleMap === undefined)
    problems.push(
      'TRAINYARD_OIDC_ROLE_MAP is unset; map groups to roles, e.g. ml-admins=admin,ml-ops=operator,*=viewer.',
    );
  else {
    try {
      roleMap = parseRoleMap(rawRoleMap);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
    }
  }
  const groupsClaim = read(env, 'TRAINYARD_OIDC_GROUPS_CLAIM') ?? 'groups';
  if (!/^[A-Za-z0-9_:/.-]{1,200}$/.test(groupsClaim))
    problems.push(`TRAINYARD_OIDC_GROUPS_CLAIM=${groupsClaim} is not a claim name (letters, digits, _ : / . -).`);
  const scopes = read(env, 'TRAINYARD_OIDC_SCOPES') ?? 'openid profile email';
  if (!scopes.split(/\s+/).includes('openid')) problems.push(`TRAINYARD_OIDC_SCOPES=${scopes} must include openid.`);
  if (issuer === null || clientId === undefined || publicUrl === null) return { oidc: null, localLogin, publicUrl };
  return {
    oidc: {
      issuer,
      clientId,
      clientSecret,
      groupsClaim,
      roleMap,
      scopes,
      redirectUri: `${publicUrl}${OIDC_CALLBACK_PATH}`,
    },
    localLogin,
    publicUrl,
  };
}

/** The README rows of these settings (lib/config.ts appends them to SETTINGS). */
export const OIDC_SETTINGS: ReadonlyArray<{ name: string; default: string; meaning: string }> = [
  {
    name: 'TRAINYARD_PUBLIC_URL',
    default: '(none)',
    meaning: 'the address browsers open, e.g. https://trainyard.example.com; single sign-on redirects back to it',
  },
  {
    name: 'TRAINYARD_OIDC_ISSUER',
    default: '(SSO off)',
    meaning: 'OpenID Connect issuer URL; set → the login page offers single sign-on (README, Single sign-on)',
  },
  { name: 'TRAINYARD_OIDC_CLIENT_ID', default: '(none)', meaning: 'client id registered at the provider' },
  {
    name: 'TRAINYARD_OIDC_CLIENT_SECRET',
    default: '(none)',
    meaning: 'client secret (HTTP Basic; in the body when the provider takes only that); unset → PKCE alone',
  },
  {
    name: 'TRAINYARD_OIDC_GROUPS_CLAIM',
    default: 'groups',
    meaning: 'claim (ID token or userinfo) listing the groups; dotted for nested ones, e.g. realm_access.roles',
  },
  {
    name: 'TRAINYARD_OIDC_ROLE_MAP',
    default: '(none)',
    meaning: 'group=role pairs, e.g. `ml-admins=admin,ml-ops=operator,*=viewer`; `*` = everyone who signs in',
  },
  { name: 'TRAINYARD_OIDC_SCOPES', default: 'openid profile email', meaning: 'scopes asked for at sign-in' },
  {
    name: 'TRAINYARD_LOCAL_LOGIN',
    default: 'true',
    meaning: 'false hides the password form and refuses POST /login (SSO only; API tokens keep working)',
  },
];
