// Builds the app and listens; nothing else.
import type { FastifyInstance } from 'fastify';
import { portIsFree } from '../lib/temporal-dev-server.js';
import { buildApp } from './app.js';
import type { AppDeps } from './deps.js';
import { EXPECTED_ERROR } from '../domain/failures.js';
import { ConfigError } from '../lib/config.js';
import { unknownMappedRoles } from '../services/sso.js';

export class PortInUseError extends Error {
  override name = EXPECTED_ERROR.portInUse;
}

export async function assertPortFree(port: number, host: string): Promise<void> {
  if (!(await portIsFree(port, host))) {
    throw new PortInUseError(`Port ${port} on ${host} is in use; stop what holds it or set PORT to another port.`);
  }
}

/**
 * The role map may name custom roles, which live in the database: checked once it is reachable,
 * so a typo fails the start (one line) rather than every SSO sign-in.
 */
export async function assertRoleMapRoles(deps: Pick<AppDeps, 'config' | 'db'>): Promise<void> {
  if (!deps.config.oidc) return;
  const unknown = await unknownMappedRoles(deps.db, deps.config.oidc.roleMap);
  if (unknown.length > 0)
    throw new ConfigError(
      `TRAINYARD_OIDC_ROLE_MAP names ${unknown.map((n) => `"${n}"`).join(', ')}, which no role is; use existing role names (e.g. viewer, operator, admin) or create the role first.`,
    );
}

export async function startWebServer(deps: AppDeps): Promise<{ app: FastifyInstance; url: string }> {
  await assertRoleMapRoles(deps);
  const app = await buildApp(deps, { logger: true });
  try {
    await app.listen({ port: deps.config.port, host: deps.config.host });
  } catch (error) {
    await app.close();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new PortInUseError(
        `Port ${deps.config.port} on ${deps.config.host} is in use; stop what holds it or set PORT to another port.`,
      );
    }
    throw error;
  }
  const shownHost = deps.config.host === '0.0.0.0' ? 'localhost' : deps.config.host;
  return { app, url: `http://${shownHost}:${deps.config.port}` };
}
