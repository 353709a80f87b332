// The web app as a plugin-built Fastify instance: server.ts listens, tests `inject`.
// External plugins first, then ours, then encapsulated routes; one error handler.
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { HTTP_STATUS, ServiceError, type LocalizedText, type ServiceErrorCode } from '../services/errors.js';
import { translator } from '../views/i18n.js';
import { flash } from '../views/fragments/flash.js';
import { messagePage } from '../views/pages/message.js';
import { authPlugin } from './plugins/auth.js';
import type { Config } from '../lib/config.js';
import type { AppDeps } from './deps.js';
import { formValidator } from './validation.js';
import { healthRoutes } from './routes/health.js';
import { inviteRoutes, redactUrl } from './routes/invite.js';
import { pageContext, pageRoutes } from './routes/pages.js';
import { platformRoutes } from './routes/platform.js';
import { ssoRoutes } from './routes/sso.js';
import { staticRoutes } from './routes/static.js';
import { auditPlugin } from './plugins/audit.js';
import { localePlugin } from './plugins/locale.js';
import { prometheusPlugin } from './plugins/prometheus.js';
import { statusFeedPlugin, type StreamLimits } from './plugins/status-feed.js';
import { uiRoutes } from './routes/ui/index.js';

const wantsJson = (request: FastifyRequest) => request.url.startsWith('/api/') || request.url.startsWith('/healthz');

function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  code: string,
  text: LocalizedText,
  field?: string,
) {
  // The JSON API speaks English, as its clients' scripts expect; pages speak the reader's language.
  if (wantsJson(request)) {
    return reply.code(status).send({ error: { code, message: text.en, ...(field ? { field } : {}) } });
  }
  const message = text[request.locale];
  if (request.headers['hx-request'] === 'true') {
    // htmx gets a fragment: the message, swapped into the page's #flash region.
    return reply
      .code(status)
      .header('HX-Retarget', '#flash')
      .header('HX-Reswap', 'innerHTML')
      .type('text/html; charset=utf-8')
      .send(flash(message).value);
  }
  const t = translator(request.locale);
  const title = status === 403 ? t('forbidden') : status === 404 ? t('notFound') : t('error');
  const body = messagePage(pageContext(request), title, message).value;
  // htmx swaps 2xx only by default; errors still reach the page through its error handling.
  return reply.code(status).type('text/html; charset=utf-8').send(body);
}

/** A hop count as the function Fastify's types ask for (its runtime reads a number the same way). */
function trustProxyOption(
  setting: Config['trustProxy'],
): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}

export interface AppOptions {
  logger?: boolean;
  /** Where the log goes when `logger` is on (stdout by default; tests read it). */
  logStream?: NodeJS.WritableStream;
  /** Limits of the live status streams (tests shorten them). */
  streams?: Partial<StreamLimits>;
}

export async function buildApp(deps: AppDeps, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger
      ? {
          level: deps.config.logLevel,
          ...(options.logStream ? { stream: options.logStream } : {}),
          // Fastify's own request fields, but an invite link's token never reaches the log.
          serializers: {
            req: (request) => ({
              method: request.method,
              url: redactUrl(request.url),
              host: request.host,
              remoteAddress: request.ip,
              remotePort: request.socket?.remotePort,
            }),
          },
        }
      : false,
    // X-Forwarded-* only from the proxy TRUST_PROXY names: else anyone could pick the address
    // the login limiter and the audit log see.
    trustProxy: trustProxyOption(deps.config.trustProxy),
    bodyLimit: 1024 * 1024,
  });
  // Pages and forms send text; the JSON API swaps in its own validator for bodies (api/validation.ts).
  app.setValidatorCompiler(formValidator);
  app.addSchema({
    $id: 'Health',
    type: 'object',
    properties: {
      status: { type: 'string' },
      database: { type: 'object', properties: { ok: { type: 'boolean' }, error: { type: 'string' } } },
      temporal: { type: 'object', properties: { ok: { type: 'boolean' }, error: { type: 'string' } } },
    },
  });

  // Set before any plugin adds a route: a route keeps the error handler of its time.
  app.setErrorHandler((error: FastifyError | ServiceError, request, reply) => {
    if (error instanceof ServiceError) {
      return sendError(request, reply, HTTP_STATUS[error.code], error.code, error.text, error.field);
    }
    if (error.validation) {
      const first = error.validation[0];
      const params = first?.params as { missingProperty?: string; additionalProperty?: string } | undefined;
      const path = first?.instancePath?.replace(/^\//, '').replace(/\//g, '.');
      const field = [path, params?.missingProperty ?? params?.additionalProperty].filter(Boolean).join('.');
      // Fastify's schema messages are English: a page names the field instead.
      const text = { en: error.message, ru: field ? `Поле ${field} заполнено неверно.` : 'Форма заполнена неверно.' };
      return sendError(request, reply, 400, 'invalid' satisfies ServiceErrorCode, text, field || undefined);
    }
    const status = error.statusCode;
    if (status && status >= 400 && status < 500)
      return sendError(request, reply, status, 'invalid', {
        en: error.message,
        ru: `Сервер не принял запрос (${status}).`,
      });
    request.log.error(error);
    return sendError(request, reply, 500, 'internal', {
      en: 'Internal error; the server log has the details.',
      ru: 'Внутренняя ошибка; подробности в журнале сервера.',
    });
  });

  await app.register(cookie);
  await app.register(formbody);
  // Cross-cutting plugins (api/plugins/): who is asking, in which language, what they did
  // (audit log), request counts for /metrics, and the live status feed of the processes pages.
  await app.register(authPlugin, { deps });
  await app.register(localePlugin, { deps });
  await app.register(auditPlugin, { deps });
  await app.register(prometheusPlugin, { deps });
  await app.register(statusFeedPlugin, { db: deps.db, ...(options.streams ? { limits: options.streams } : {}) });

  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, 404, 'not_found', {
      en: `No route ${request.method} ${request.url.split('?')[0]}.`,
      ru: `Нет такой страницы: ${request.method} ${request.url.split('?')[0]}.`,
    }),
  );

  await app.register(staticRoutes);
  await app.register(healthRoutes, { deps });
  await app.register(pageRoutes, { deps });
  await app.register(inviteRoutes, { deps });
  await app.register(ssoRoutes, { deps });
  await app.register(platformRoutes, { deps });
  await app.register(uiRoutes, { deps });
  return app;
}
