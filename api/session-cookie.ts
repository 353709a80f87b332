// Starting a session after a successful sign-in, by password (POST /login) or single sign-on:
// a fresh session id every time, so a cookie planted before the sign-in is worth nothing after.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createSession, destroySession, SESSION_TTL_MS } from '../services/accounts.js';
import type { AppDeps } from './deps.js';
import { SESSION_COOKIE } from './plugins/auth.js';

export async function startSession(
  deps: AppDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  userId: number,
): Promise<void> {
  const old = request.cookies[SESSION_COOKIE];
  if (old) await destroySession(deps.db, old);
  const session = await createSession(deps.db, userId);
  reply.setCookie(SESSION_COOKIE, session.cookie, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: request.protocol === 'https',
    maxAge: SESSION_TTL_MS / 1000,
  });
}
