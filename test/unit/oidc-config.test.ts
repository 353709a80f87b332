// Single sign-on settings (lib/oidc-config.ts through loadConfig): the role map's syntax, which
// roles a user's groups give, one clear line per mistake at boot; and the sealed flow cookie.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { openFlow, sealFlow, type FlowState } from '../../api/sso/flow-cookie.js';
import { groupsOf } from '../../api/sso/provider.js';
import { ConfigError, loadConfig } from '../../lib/config.js';
import { parseRoleMap, rolesForGroups } from '../../lib/oidc-config.js';
import { loginFromWish } from '../../services/sso.js';

const SSO = {
  TRAINYARD_PUBLIC_URL: 'https://trainyard.example.com/',
  TRAINYARD_OIDC_ISSUER: 'https://login.example.com/realms/ml',
  TRAINYARD_OIDC_CLIENT_ID: 'trainyard',
  TRAINYARD_OIDC_CLIENT_SECRET: 's3cret',
  TRAINYARD_OIDC_ROLE_MAP: 'ml-admins=admin,ml-ops=operator,*=viewer',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env, os.tmpdir());
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('the role map', () => {
  it('reads group=role pairs, a group more than once, and * for everyone', () => {
    expect(parseRoleMap(' ml-admins=admin , ml-ops=operator,ml-ops=viewer,*=viewer,')).toEqual([
      { group: 'ml-admins', role: 'admin' },
      { group: 'ml-ops', role: 'operator' },
      { group: 'ml-ops', role: 'viewer' },
      { group: '*', role: 'viewer' },
    ]);
    // Keycloak's full group paths and Entra's object ids are groups like any other.
    expect(parseRoleMap('/ml/admins=admin,0b1c2d3e-aaaa-bbbb-cccc-0123456789ab=operator')).toEqual([
      { group: '/ml/admins', role: 'admin' },
      { group: '0b1c2d3e-aaaa-bbbb-cccc-0123456789ab', role: 'operator' },
    ]);
  });

  it('names every bad entry on a line of its own', () => {
    expect(() => parseRoleMap('ml-admins')).toThrow(/"ml-admins" is not group=role/);
    let error: unknown;
    try {
      parseRoleMap('=admin,ops=,ok=viewer,bad=<script>');
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).problems).toEqual([
      'TRAINYARD_OIDC_ROLE_MAP: "=admin" is not group=role; write it like ml-admins=admin,ml-ops=operator,*=viewer.',
      'TRAINYARD_OIDC_ROLE_MAP: "ops=" is not group=role; write it like ml-admins=admin,ml-ops=operator,*=viewer.',
      'TRAINYARD_OIDC_ROLE_MAP: "<script>" (for group "bad") is not a role name.',
    ]);
    expect(() => parseRoleMap(' , ')).toThrow(/is empty/);
  });

  it('gives the roles of every group the user is in, plus the * ones, each once', () => {
    const map = parseRoleMap('ml-admins=admin,ml-ops=operator,*=viewer,ml-ops=viewer');
    expect(rolesForGroups(map, ['ml-ops', 'other'])).toEqual(['operator', 'viewer']);
    expect(rolesForGroups(map, [])).toEqual(['viewer']);
    expect(rolesForGroups(parseRoleMap('ml-ops=operator'), ['ML-OPS', 'other'])).toEqual([]);
  });
});

describe('single sign-on settings at boot', () => {
  it('are off by default, with local login on', () => {
    const config = loadConfig({}, os.tmpdir());
    expect(config.oidc).toBeNull();
    expect(config.localLogin).toBe(true);
    expect(config.publicUrl).toBeNull();
  });

  it('derive the redirect URI from TRAINYARD_PUBLIC_URL', () => {
    const config = loadConfig({ ...SSO, TRAINYARD_LOCAL_LOGIN: 'false' }, os.tmpdir());
    expect(config.oidc).toEqual({
      issuer: 'https://login.example.com/realms/ml',
      clientId: 'trainyard',
      clientSecret: 's3cret',
      groupsClaim: 'groups',
      roleMap: parseRoleMap(SSO.TRAINYARD_OIDC_ROLE_MAP),
      scopes: 'openid profile email',
      redirectUri: 'https://trainyard.example.com/auth/oidc/callback',
    });
    expect(config.localLogin).toBe(false);
  });

  it('say what to set, a line per mistake', () => {
    expect(
      problems({
        ...SSO,
        TRAINYARD_OIDC_ISSUER: 'login.example.com',
        TRAINYARD_OIDC_ROLE_MAP: 'ml-admins:admin',
        TRAINYARD_LOCAL_LOGIN: 'maybe',
      }),
    ).toEqual([
      'TRAINYARD_LOCAL_LOGIN=maybe is not a boolean; set TRAINYARD_LOCAL_LOGIN to true or false.',
      'TRAINYARD_OIDC_ISSUER=login.example.com is not a URL; set it to the issuer, ' +
        'e.g. https://login.example.com/realms/ml.',
      'TRAINYARD_OIDC_ROLE_MAP: "ml-admins:admin" is not group=role; ' +
        'write it like ml-admins=admin,ml-ops=operator,*=viewer.',
    ]);
    expect(problems({ TRAINYARD_OIDC_CLIENT_ID: 'trainyard', TRAINYARD_OIDC_ROLE_MAP: '*=viewer' })).toEqual([
      'TRAINYARD_OIDC_CLIENT_ID, TRAINYARD_OIDC_ROLE_MAP set without TRAINYARD_OIDC_ISSUER; ' +
        'set the issuer too, or unset them.',
    ]);
    expect(problems({ TRAINYARD_OIDC_ISSUER: 'https://login.example.com' })).toEqual([
      'TRAINYARD_OIDC_CLIENT_ID is unset; set the client id registered at the provider.',
      'TRAINYARD_PUBLIC_URL is unset; single sign-on needs the address browsers open ' +
        '(the provider redirects to <it>/auth/oidc/callback).',
      'TRAINYARD_OIDC_ROLE_MAP is unset; map groups to roles, e.g. ml-admins=admin,ml-ops=operator,*=viewer.',
    ]);
    expect(problems({ TRAINYARD_LOCAL_LOGIN: 'false' })).toEqual([
      'TRAINYARD_LOCAL_LOGIN=false needs single sign-on (TRAINYARD_OIDC_ISSUER), else nobody can sign in.',
    ]);
  });

  it('take plain http only from a provider on loopback', () => {
    expect(problems({ ...SSO, TRAINYARD_OIDC_ISSUER: 'http://login.example.com' })).toEqual([
      'TRAINYARD_OIDC_ISSUER=http://login.example.com must be an https:// URL (http:// only on 127.0.0.1 or localhost).',
    ]);
    expect(loadConfig({ ...SSO, TRAINYARD_OIDC_ISSUER: 'http://127.0.0.1:9000' }, os.tmpdir()).oidc?.issuer).toBe(
      'http://127.0.0.1:9000',
    );
  });

  it('refuse a public URL with a query, a bad groups claim, and scopes without openid', () => {
    expect(
      problems({
        ...SSO,
        TRAINYARD_PUBLIC_URL: 'https://x.example.com/?a=1',
        TRAINYARD_OIDC_GROUPS_CLAIM: 'groups claim',
        TRAINYARD_OIDC_SCOPES: 'profile email',
      }),
    ).toEqual([
      'TRAINYARD_PUBLIC_URL=https://x.example.com/?a=1 is not a base URL; ' +
        'set it to the address browsers open, e.g. https://trainyard.example.com.',
      'TRAINYARD_OIDC_GROUPS_CLAIM=groups claim is not a claim name (letters, digits, _ : / . -).',
      'TRAINYARD_OIDC_SCOPES=profile email must include openid.',
    ]);
  });
});

describe('what the provider says', () => {
  it('reads groups from a claim, a nested claim, or a single string', () => {
    expect(groupsOf({ groups: ['a', 'b', 3] }, 'groups')).toEqual(['a', 'b']);
    expect(groupsOf({ realm_access: { roles: ['ml-ops'] } }, 'realm_access.roles')).toEqual(['ml-ops']);
    expect(groupsOf({ 'https://example.com/groups': 'one' }, 'https://example.com/groups')).toEqual(['one']);
    expect(groupsOf({}, 'groups')).toBeUndefined();
  });

  it('makes a valid login of any preferred_username', () => {
    expect(loginFromWish('alice@example.com')).toBe('alice@example.com');
    expect(loginFromWish('Иван Петров <x>')).toBe('x');
    expect(loginFromWish('<script>alert(1)</script>')).toBe('script-alert-1-script');
    expect(loginFromWish('ДД')).toBe('sso-user');
    expect(loginFromWish('a'.repeat(100))).toHaveLength(64);
  });
});

describe('the flow cookie', () => {
  const flow: FlowState = { state: 's', nonce: 'n', verifier: 'v', next: '/x', expires: Date.now() + 60_000 };
  const secret = 'test-secret-0123456789abcdef';

  it('opens what it sealed, under the same secret only, and not once expired', () => {
    const sealed = sealFlow(secret, flow);
    expect(openFlow(secret, sealed)).toEqual(flow);
    expect(openFlow('another-secret-0123456789', sealed)).toBeNull();
    expect(openFlow(secret, sealed, flow.expires + 1)).toBeNull();
    expect(openFlow(secret, undefined)).toBeNull();
  });

  it('refuses a changed or damaged cookie', () => {
    const [version, iv, tag, body] = sealFlow(secret, flow).split('.');
    const flipped = Buffer.from(body!, 'base64url');
    flipped[0] = flipped[0]! ^ 1;
    expect(openFlow(secret, [version, iv, tag, flipped.toString('base64url')].join('.'))).toBeNull();
    expect(openFlow(secret, `${version}.${iv}.${tag}`)).toBeNull();
    expect(openFlow(secret, 'not a cookie')).toBeNull();
  });
});
