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

export async function healthRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
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
          await within(2000, work());
          return { ok: true };
        } catch (error) {
          return { ok: false, error: (error as Error).message };
        }
      };
      const [database, temporal] = await Promise.all([
        check(() => deps.db.execute(sql`select 1`)),
        check(() => deps.temporal.connection.workflowService.getSystemInfo({})),
      ]);
      const ok = database.ok && temporal.ok;
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', database, temporal });
    },
  );
}
