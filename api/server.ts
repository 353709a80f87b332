// Builds the app and listens; nothing else.
import type { FastifyInstance } from 'fastify';
import { portIsFree } from '../lib/temporal-dev-server.js';
import { buildApp } from './app.js';
import type { AppDeps } from './deps.js';
import { EXPECTED_ERROR } from '../domain/failures.js';

export class PortInUseError extends Error {
  override name = EXPECTED_ERROR.portInUse;
}

export async function assertPortFree(port: number, host: string): Promise<void> {
  if (!(await portIsFree(port, host))) {
    throw new PortInUseError(`Port ${port} on ${host} is in use; stop what holds it or set PORT to another port.`);
  }
}

export async function startWebServer(deps: AppDeps): Promise<{ app: FastifyInstance; url: string }> {
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
