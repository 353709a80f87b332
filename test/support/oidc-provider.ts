// A real OpenID Provider on loopback for the single sign-on tests: oidc-provider with one
// confidential client (client_secret_basic), its development login and consent pages, and an
// in-memory account store whose groups a test changes between sign-ins.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface TestProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** login → groups; whoever signs in at the provider's login page with that login gets them. */
  groups: Map<string, string[]>;
  close(): Promise<void>;
}

export async function startTestProvider(options: { port: number; redirectUri: string }): Promise<TestProvider> {
  const issuer = `http://127.0.0.1:${options.port}`;
  const clientId = 'trainyard-test';
  const clientSecret = 'trainyard-test-client-secret-0123456789';
  const groups = new Map<string, string[]>();
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.redirectUri],
        token_endpoint_auth_method: 'client_secret_basic',
        response_types: ['code'],
        grant_types: ['authorization_code'],
      },
    ],
    // A `groups` scope, as Keycloak's client scopes carry the groups mapper.
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
    cookies: { keys: ['trainyard-test-provider-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    // Set, so the provider does not warn about its defaults at every sign-in.
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    // Read at every sign-in, so a test's change of groups shows at the next one.
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, preferred_username: id, name: `SSO ${id}`, groups: groups.get(id) ?? [] }),
    }),
  });
  // Its own complaints (a refused code) are expected in these tests; the app's answer is what counts.
  provider.on('server_error', (...args: unknown[]) => console.error('oidc-provider server_error', ...args));
  const server = http.createServer(provider.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  if ((server.address() as AddressInfo).port !== options.port) throw new Error('provider port');
  return {
    issuer,
    clientId,
    clientSecret,
    groups,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
