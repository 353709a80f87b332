// GET /healthz: ready when the database and Temporal both answer; says which does not.
import type { FastifyInstance } from 'fastify';
import { sql } from 'drizzle-orm';
import type { AppDeps } from '../deps.js';

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a check may take before the route answers without it. */
const CHECK_MS = 2000;

export async function healthRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  // The Temporal client retries an unanswered call on a timer of its own, past our answer;
  // a retry that fires after the connection is closed throws where nothing can catch it.
  // So the call gets a deadline (its retries stop soon after), and closing waits for it.
  const temporalChecks = new Set<Promise<unknown>>();
  const askTemporal = () => {
    const call = deps.temporal.connection.withDeadline(Date.now() + CHECK_MS, () =>
      deps.temporal.connection.workflowService.getSystemInfo({}),
    );
    const settled = call.then(
      () => undefined,
      () => undefined,
    );
    temporalChecks.add(settled);
    void settled.finally(() => temporalChecks.delete(settled));
    return call;
  };
  app.addHook('onClose', async () => {
    await Promise.all(temporalChecks);
  });

  app.get(
    '/healthz',
    {
      schema: {
        response: {
          '2xx': { $ref: 'Health#' },
          '5xx': { $ref: 'Health#' },
        },
      },
    },
    async (_request, reply) => {
      const check = async (work: () => Promise<unknown>) => {
        try {
          await within(CHECK_MS, work());
          return { ok: true };
        } catch (error) {
          return { ok: false, error: (error as Error).message };
        }
      };
      const [database, temporal] = await Promise.all([check(() => deps.db.execute(sql`select 1`)), check(askTemporal)]);
      const ok = database.ok && temporal.ok;
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', database, temporal });
    },
  );
}
