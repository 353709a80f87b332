// /api/v1/machines: target machines. Reading needs machines.view, writing
// machines.manage (both global). Keys go in, never out.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import {
  createMachine,
  deleteMachine,
  getMachine,
  listMachines,
  probeMachine,
  updateMachine,
  type MachineDeps,
} from '../../../services/machines.js';
import { fetchHostKey, HOST_KEY_ANSWER_MS } from '../../../services/host-key.js';
import { permitted } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import {
  errors,
  NoContent,
  HostKey,
  HostKeyQuery,
  HostKeyRequest,
  IdParams,
  list,
  Machine,
  MachineCreate,
  MachinePatch,
  MachineProbe,
} from './schemas.js';

export async function machineRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const machineDeps: MachineDeps = { db: deps.db, secret: deps.secret, keysDir: deps.config.keysDir };
  const view = permitted('machines.view');
  const manage = permitted('machines.manage');

  app.get(
    '/machines',
    {
      config: { permission: 'machines.view' },
      schema: { summary: 'Target machines', tags: ['machines'], response: { 200: list(Machine), ...errors() } },
      preHandler: view,
    },
    async () => {
      return { items: await listMachines(deps.db), nextCursor: null };
    },
  );

  app.post(
    '/machines',
    {
      config: { permission: 'machines.manage', audit: 'machine.create' },
      schema: {
        summary: 'Add a target machine',
        description:
          'Give privateKey (stored encrypted) or privateKeyPath (under TRAINYARD_KEYS_DIR). Pin hostKeyFingerprint ' +
          'after checking it (see POST /machines/host-key).',
        tags: ['machines'],
        body: MachineCreate,
        response: { 201: Machine, ...errors(409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      const machine = await createMachine(machineDeps, request.body);
      request.audit.targetId = machine.id;
      request.audit.detail = { name: machine.name, address: machine.address };
      return reply.code(201).send(machine);
    },
  );

  app.post(
    '/machines/host-key',
    {
      config: { permission: 'machines.manage', audit: 'machine.host_key' },
      schema: {
        summary: "Read a server's SSH host key fingerprint",
        description:
          'For the fetch-and-confirm step: compare with `ssh-keygen -lf` on the server before pinning it. A worker ' +
          'reads it, not the web server: with machineId, one serving that machine; without, any worker. 400 when ' +
          `the address answers with no SSH host key; 503 when no worker answers within ${HOST_KEY_ANSWER_MS / 1000} s.`,
        tags: ['machines'],
        querystring: HostKeyQuery,
        body: HostKeyRequest,
        response: { 200: HostKey, ...errors(404, 503) },
      },
      preHandler: manage,
    },
    async (request) => {
      return fetchHostKey({ db: deps.db, client: deps.temporal.client }, request.body.address, {
        machineId: request.query.machineId ?? null,
      });
    },
  );

  app.get(
    '/machines/:id',
    {
      config: { permission: 'machines.view' },
      schema: {
        summary: 'One target machine',
        tags: ['machines'],
        params: IdParams,
        response: { 200: Machine, ...errors(404) },
      },
      preHandler: view,
    },
    async (request) => {
      return getMachine(deps.db, request.params.id);
    },
  );

  app.patch(
    '/machines/:id',
    {
      config: { permission: 'machines.manage', audit: 'machine.update' },
      schema: {
        summary: 'Change a target machine',
        description:
          'Only the fields given change. The built-in local machine changes only slots, gpus, lostTimeoutSeconds ' +
          'and enabled.',
        tags: ['machines'],
        params: IdParams,
        body: MachinePatch,
        response: { 200: Machine, ...errors(404, 409) },
      },
      preHandler: manage,
    },
    async (request) => {
      request.audit.detail = { fields: Object.keys(request.body ?? {}) };
      return updateMachine(machineDeps, request.params.id, request.body ?? {});
    },
  );

  app.delete(
    '/machines/:id',
    {
      config: { permission: 'machines.manage', audit: 'machine.delete' },
      schema: {
        summary: 'Delete a target machine',
        description: 'Refused (409) while processes use it, and for the built-in local machine.',
        tags: ['machines'],
        params: IdParams,
        response: { 204: NoContent, ...errors(404, 409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      await deleteMachine(deps.db, request.params.id);
      return reply.code(204).send();
    },
  );

  app.post(
    '/machines/:id/probe',
    {
      config: { permission: 'machines.manage', audit: 'machine.probe' },
      schema: {
        summary: 'Probe a machine now',
        description: 'Runs on the worker serving the machine; 503 when no worker serves it.',
        tags: ['machines'],
        params: IdParams,
        response: { 200: MachineProbe, ...errors(404, 409, 503) },
      },
      preHandler: manage,
    },
    async (request) => {
      return probeMachine({ db: deps.db, client: deps.temporal.client }, request.params.id);
    },
  );
}
