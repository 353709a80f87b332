// The relying party, through openid-client: discovery (lazy, retried after a failure, so the
// web process starts while the provider is down), the authorization URL with PKCE, state and
// nonce, and the callback's checks. Every refusal is an SsoError naming what did not hold.
import * as client from 'openid-client';
import type { OidcConfig } from '../../lib/oidc-config.js';
import type { ExternalIdentity } from '../../services/sso.js';
import type { FlowState } from './flow-cookie.js';

/**
 * unreachable: discovery failed; state/nonce: the answer belongs to another sign-in; code: the
 * token endpoint refused the code; provider: it answered with an error; invalid: anything else.
 */
export type SsoFailure = 'unreachable' | 'state' | 'nonce' | 'code' | 'provider' | 'invalid';

export class SsoError extends Error {
  override name = 'SsoError';
  constructor(
    readonly reason: SsoFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface SsoClient {
  /** Where to send the browser, and what it must bring back (sealed into the flow cookie). */
  start(): Promise<{ url: string; checks: Pick<FlowState, 'state' | 'nonce' | 'verifier'> }>;
  /** Checks the provider's answer (`query`: the callback's query string) and returns who signed in. */
  finish(query: string, flow: FlowState): Promise<ExternalIdentity>;
}

/** Every message along an error's causes: openid-client wraps the precise one of oauth4webapi. */
function messages(error: unknown): string {
  const out: string[] = [];
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) out.push(e.message);
  return out.join(': ');
}

function classify(error: unknown): SsoError {
  const text = messages(error);
  if (error instanceof client.AuthorizationResponseError) {
    return new SsoError(
      'provider',
      `The provider refused the sign-in: ${error.error}${error.error_description ? ` (${error.error_description})` : ''}.`,
    );
  }
  if (/"state"/.test(text)) return new SsoError('state', `The answer does not belong to this sign-in (state): ${text}`);
  if (/"nonce"/.test(text))
    return new SsoError('nonce', `The ID token was issued for another sign-in (nonce): ${text}`);
  if (error instanceof client.ResponseBodyError)
    return new SsoError('code', `The provider refused the code (${error.error}): ${error.error_description ?? text}`);
  return new SsoError('invalid', `The provider's answer could not be verified: ${text}`);
}

/** The claim at a dotted path (realm_access.roles), as a list of strings. */
export function groupsOf(claims: Record<string, unknown>, path: string): string[] | undefined {
  let value: unknown = path in claims ? claims[path] : undefined;
  if (value === undefined && path.includes('.')) {
    value = claims;
    for (const key of path.split('.'))
      value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  }
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((g): g is string => typeof g === 'string') : [];
}

const str = (value: unknown) => (typeof value === 'string' ? value : '');

export function createSsoClient(oidc: OidcConfig): SsoClient {
  let configuration: Promise<client.Configuration> | null = null;

  async function discover(): Promise<client.Configuration> {
    const server = new URL(oidc.issuer);
    const insecure = server.protocol === 'http:';
    const found = await client.discovery(server, oidc.clientId, undefined, undefined, {
      execute: insecure ? [client.allowInsecureRequests] : [],
      timeout: 10,
    });
    const metadata = found.serverMetadata();
    const methods = metadata.token_endpoint_auth_methods_supported;
    // client_secret_basic is the spec's default; the body only when the provider takes nothing else.
    const auth =
      oidc.clientSecret === null
        ? client.None()
        : !methods || methods.includes('client_secret_basic')
          ? client.ClientSecretBasic(oidc.clientSecret)
          : client.ClientSecretPost(oidc.clientSecret);
    const config = new client.Configuration(metadata, oidc.clientId, oidc.clientSecret ?? undefined, auth);
    if (insecure) client.allowInsecureRequests(config);
    return config;
  }

  function configured(): Promise<client.Configuration> {
    if (!configuration) {
      const pending = discover().catch((error: unknown) => {
        // Forgotten, so the next sign-in asks again: the provider may be back by then.
        configuration = null;
        throw new SsoError(
          'unreachable',
          `The sign-in provider ${oidc.issuer} could not be reached: ${messages(error)}`,
        );
      });
      configuration = pending;
    }
    return configuration;
  }

  return {
    async start() {
      const config = await configured();
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: oidc.redirectUri,
        scope: oidc.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, checks: { state, nonce, verifier } };
    },

    async finish(query, flow) {
      const config = await configured();
      // The registered redirect URI, not the request's own URL: behind a proxy they differ.
      const current = new URL(`${oidc.redirectUri}?${query}`);
      let claims: Record<string, unknown>;
      let accessToken: string;
      try {
        const tokens = await client.authorizationCodeGrant(config, current, {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
          expectedNonce: flow.nonce,
          idTokenExpected: true,
        });
        claims = { ...tokens.claims() };
        accessToken = tokens.access_token;
      } catch (error) {
        throw classify(error);
      }
      const subject = str(claims.sub);
      let groups = groupsOf(claims, oidc.groupsClaim);
      // Providers that keep the ID token small (or conform it to the scopes) put groups in userinfo.
      if ((groups === undefined || !claims.preferred_username) && config.serverMetadata().userinfo_endpoint) {
        try {
          const info = await client.fetchUserInfo(config, accessToken, subject);
          claims = { ...info, ...claims };
          groups ??= groupsOf(info, oidc.groupsClaim);
        } catch {
          // The ID token alone has already proved who this is; without userinfo the user simply
          // has no groups from it (and, with no `*` entry, is refused for want of a role).
        }
      }
      return {
        issuer: str(claims.iss) || oidc.issuer,
        subject,
        preferredLogin: str(claims.preferred_username) || str(claims.email) || subject,
        name: str(claims.name),
        groups: groups ?? [],
      };
    },
  };
}
