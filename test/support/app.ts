// The web app over the integration stack, and users to drive it as: each with a
// bearer token and a session (created directly, so tests skip the scrypt login cost
// except where the login itself is under test).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type AppOptions } from '../../api/app.js';
import type { AppDeps } from '../../api/deps.js';
import { loadConfig } from '../../lib/config.js';
import { createSession, createToken, createUser, grantRole } from '../../services/accounts.js';
import { uid, type Stack } from './stack.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef';

export interface TestApp {
  app: FastifyInstance;
  deps: AppDeps;
  keysDir: string;
  close(): Promise<void>;
}

/** `env`: more settings as lib/config.ts reads them (e.g. TRUST_PROXY); `app`: buildApp's options. */
export async function startApp(
  stack: Stack,
  options: { env?: Record<string, string>; app?: AppOptions } = {},
): Promise<TestApp> {
  const keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-test-keys-'));
  const config = loadConfig(
    { LOG_LEVEL: 'warn', TRAINYARD_KEYS_DIR: keysDir, TRAINYARD_DATA_DIR: stack.dataDir, ...options.env },
    process.cwd(),
  );
  const deps: AppDeps = {
    config,
    db: stack.database.db,
    sql: stack.database.sql,
    secret: TEST_SECRET,
    temporal: { client: stack.client, connection: stack.connection },
    temporalUiUrl: null,
  };
  const app = await buildApp(deps, options.app);
  return { app, deps, keysDir, close: () => app.close() };
}

export interface Actor {
  id: number;
  login: string;
  password: string;
  token: string;
  cookie: string;
  csrf: string;
}

/** A user holding the given roles (globally, or for one template each), with a token and a session. */
export async function makeActor(
  stack: Stack,
  grants: Array<{ role: string; templateId?: number }>,
  prefix = 'u',
): Promise<Actor> {
  const login = `${prefix}-${uid()}`;
  const password = `pw-${uid()}-${uid()}`;
  const user = await createUser(stack.database.db, { login, password });
  for (const grant of grants) await grantRole(stack.database.db, login, grant.role, grant.templateId ?? null);
  const { token } = await createToken(stack.database.db, login, { name: 'test' });
  const session = await createSession(stack.database.db, user.id);
  return { id: user.id, login, password, token, cookie: session.cookie, csrf: session.csrfToken };
}

/** A request as a token holder (the JSON API's way). */
export function viaToken(
  app: FastifyInstance,
  actor: Pick<Actor, 'token'> | null,
  options: InjectOptions,
): Promise<LightMyRequestResponse> {
  return app.inject({
    ...options,
    headers: { ...options.headers, ...(actor ? { authorization: `Bearer ${actor.token}` } : {}) },
  });
}

/** A request as a browser with a session (and the CSRF header htmx sends). */
export function viaSession(
  app: FastifyInstance,
  actor: Pick<Actor, 'cookie' | 'csrf'> | null,
  options: InjectOptions,
): Promise<LightMyRequestResponse> {
  return app.inject({
    ...options,
    cookies: { ...(actor ? { ty_session: actor.cookie } : {}) },
    headers: { ...options.headers, ...(actor ? { 'x-csrf-token': actor.csrf } : {}) },
  });
}
