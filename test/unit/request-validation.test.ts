// How requests are validated (api/validation.ts): text from paths, queries and forms is
// coerced to the schema's types; a JSON body of the JSON API is checked as sent.
import formbody from '@fastify/formbody';
import Fastify from 'fastify';
import { Type } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formValidator, jsonValidator } from '../../api/validation.js';

const app = Fastify();

beforeAll(async () => {
  await app.register(formbody);
  app.setValidatorCompiler(formValidator);
  const Body = Type.Object(
    { count: Type.Integer(), tags: Type.Optional(Type.Array(Type.String())) },
    { additionalProperties: false },
  );
  const Query = Type.Object({ limit: Type.Optional(Type.Integer()) });
  app.post('/form', { schema: { body: Body, querystring: Query } }, async (request) => ({
    body: request.body,
    query: request.query,
  }));
  await app.register(async (api) => {
    api.setValidatorCompiler(jsonValidator);
    api.post(
      '/api/thing/:id',
      { schema: { body: Body, querystring: Query, params: Type.Object({ id: Type.Integer() }) } },
      async (request) => ({
        body: request.body,
        query: request.query,
        params: request.params,
      }),
    );
  });
  await app.ready();
});
afterAll(() => app.close());

describe('request validation', () => {
  it('coerces a form body and its query: numbers from text, one checkbox to a list of one', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/form?limit=7',
      payload: 'count=5&tags=a',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ body: { count: 5, tags: ['a'] }, query: { limit: 7 } });
  });

  it('coerces the path and query of a JSON API route', async () => {
    const response = await app.inject({ method: 'POST', url: '/api/thing/3?limit=2', payload: { count: 1 } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ body: { count: 1 }, query: { limit: 2 }, params: { id: 3 } });
  });

  it('refuses a JSON body of the wrong type instead of converting it', async () => {
    for (const payload of [{ count: '5' }, { count: 5, tags: 'a' }, { count: true }]) {
      const response = await app.inject({ method: 'POST', url: '/api/thing/3', payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
    }
  });

  it('refuses unknown fields rather than dropping them', async () => {
    const response = await app.inject({ method: 'POST', url: '/api/thing/3', payload: { count: 1, extra: 1 } });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(/additional properties/);
  });
});
