// htmx, echarts and our CSS, served from the installed packages: no front-end build step.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';

const require = createRequire(import.meta.url);
const viewsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'views', 'static');

const ASSETS: Record<string, { file: string; type: string }> = {
  'htmx.min.js': { file: require.resolve('htmx.org/dist/htmx.min.js'), type: 'text/javascript; charset=utf-8' },
  'echarts.min.js': { file: require.resolve('echarts/dist/echarts.min.js'), type: 'text/javascript; charset=utf-8' },
  'app.css': { file: path.join(viewsDir, 'app.css'), type: 'text/css; charset=utf-8' },
  'app.js': { file: path.join(viewsDir, 'app.js'), type: 'text/javascript; charset=utf-8' },
  'processes.js': { file: path.join(viewsDir, 'processes.js'), type: 'text/javascript; charset=utf-8' },
  'live-feed.js': { file: path.join(viewsDir, 'live-feed.js'), type: 'text/javascript; charset=utf-8' },
  'monitoring.js': { file: path.join(viewsDir, 'monitoring.js'), type: 'text/javascript; charset=utf-8' },
  'sweep.js': { file: path.join(viewsDir, 'sweep.js'), type: 'text/javascript; charset=utf-8' },
};

export async function staticRoutes(parent: FastifyInstance) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const cache = new Map<string, Buffer>();
  app.get(
    '/static/:name',
    { schema: { params: Type.Object({ name: Type.String({ maxLength: 100 }) }) } },
    async (request, reply) => {
      const asset = ASSETS[request.params.name];
      if (!asset) return reply.code(404).type('text/plain').send('Not found');
      let body = cache.get(asset.file);
      if (!body) {
        body = await fs.promises.readFile(asset.file);
        cache.set(asset.file, body);
      }
      return reply.type(asset.type).header('cache-control', 'public, max-age=3600').send(body);
    },
  );
}
