// How requests are validated. Text from a URL or an HTML form carries no types, so it is
// coerced to the schema's ("5" → 5, one ticked checkbox → a list of one). A JSON body
// carries its own types and is checked as sent: a wrong type is a 400 naming the field,
// never a silent conversion, and the services see the very object the client sent.
// Unknown fields are refused (never silently dropped) and one error is reported at a time.
import AjvCompiler from '@fastify/ajv-compiler';
import type { FastifySchemaCompiler } from 'fastify';

type Route = Parameters<ReturnType<ReturnType<typeof AjvCompiler>>>[0];

const build = AjvCompiler();
const SHARED = { removeAdditional: false, useDefaults: true, allErrors: false } as const;
const fromText = build({}, { customOptions: { ...SHARED, coerceTypes: 'array' } });
const asSent = build({}, { customOptions: { ...SHARED, coerceTypes: false } });

/** Pages and forms: path, query and form body are all text. */
export const formValidator: FastifySchemaCompiler<unknown> = (route) => fromText(route as Route);

/** The JSON API: path and query are text; the body is JSON, checked as sent. */
export const jsonValidator: FastifySchemaCompiler<unknown> = (route) =>
  (route.httpPart === 'body' ? asSent : fromText)(route as Route);
