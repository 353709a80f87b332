// The production shape (DESIGN §7): docker-compose.yml, the Dockerfile and
// .dockerignore. No Docker engine runs where the unit suite runs, so this test
// reads the files the way Compose and the builder would and checks the wiring
// a reviewer cares about: who talks to whom, who waits for whom, what persists,
// what is pinned and what is required.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../lib/config.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

function obj(value: unknown, what: string): Obj {
  if (!isObj(value)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

// ---------------------------------------------------------------------------
// Compose's variable interpolation (the subset of the spec the file may use):
// $$ → $, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err},
// ${VAR:+alt}, ${VAR+alt}.

class MissingVariable extends Error {}

function interpolate(text: string, env: Record<string, string>): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch !== '$') {
      out += ch;
      i += 1;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      // Find the matching brace (defaults may nest ${...}).
      let depth = 1;
      let j = i + 2;
      while (j < text.length && depth > 0) {
        if (text[j] === '{') depth += 1;
        else if (text[j] === '}') depth -= 1;
        j += 1;
      }
      if (depth !== 0) throw new Error(`unterminated \${ in ${JSON.stringify(text)}`);
      const body = text.slice(i + 2, j - 1);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([\s\S]*))?$/.exec(body);
      if (!m) throw new Error(`invalid interpolation \${${body}}`);
      const [, name = '', colon, op, arg = ''] = m;
      const value = env[name];
      const unset = value === undefined || (colon === ':' && value === '');
      if (op === undefined) out += value ?? '';
      else if (op === '-') out += unset ? interpolate(arg, env) : value;
      else if (op === '+') out += unset ? '' : interpolate(arg, env);
      else if (unset) throw new MissingVariable(`required variable ${name} is missing a value: ${arg}`);
      else out += value;
      i = j;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (m) {
      out += env[m[0]] ?? '';
      i += 1 + m[0].length;
      continue;
    }
    out += '$';
    i += 1;
  }
  return out;
}

function interpolateTree(node: Json, env: Record<string, string>): Json {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, env));
  if (isObj(node)) {
    const out: Obj = {};
    for (const [key, value] of Object.entries(node)) out[key] = interpolateTree(value, env);
    return out;
  }
  return node;
}

// ---------------------------------------------------------------------------
// Compose's short syntaxes, normalised.

function environment(service: Obj): Record<string, string | null> {
  const env = service.environment;
  const out: Record<string, string | null> = {};
  if (env === undefined || env === null) return out;
  if (Array.isArray(env)) {
    for (const entry of env) {
      const text = String(entry);
      const eq = text.indexOf('=');
      if (eq < 0) out[text] = null;
      else out[text.slice(0, eq)] = text.slice(eq + 1);
    }
    return out;
  }
  for (const [key, value] of Object.entries(obj(env, 'environment'))) {
    out[key] = value === null ? null : String(value);
  }
  return out;
}

function dependsOn(service: Obj): Record<string, string> {
  const deps = service.depends_on;
  const out: Record<string, string> = {};
  if (deps === undefined || deps === null) return out;
  if (Array.isArray(deps)) {
    for (const name of deps) out[String(name)] = 'service_started';
    return out;
  }
  for (const [name, spec] of Object.entries(obj(deps, 'depends_on'))) {
    out[name] = isObj(spec) && typeof spec.condition === 'string' ? spec.condition : 'service_started';
  }
  return out;
}

interface Mount {
  type: 'volume' | 'bind';
  source: string;
  target: string;
  readOnly: boolean;
}

function mounts(service: Obj): Mount[] {
  const list = service.volumes;
  if (!Array.isArray(list)) return [];
  return list.map((entry): Mount => {
    if (typeof entry === 'string') {
      const parts = entry.split(':');
      const [source = '', target = '', mode = ''] = parts;
      const bind = source.startsWith('.') || source.startsWith('/') || source.startsWith('~') || source.includes('/');
      return { type: bind ? 'bind' : 'volume', source, target, readOnly: mode.split(',').includes('ro') };
    }
    const spec = obj(entry, 'volume');
    return {
      type: spec.type === 'bind' ? 'bind' : 'volume',
      source: String(spec.source ?? ''),
      target: String(spec.target ?? ''),
      readOnly: spec.read_only === true,
    };
  });
}

interface Port {
  hostIp?: string;
  published?: string;
  target: string;
}

function ports(service: Obj): Port[] {
  const list = service.ports;
  if (!Array.isArray(list)) return [];
  return list.map((entry): Port => {
    if (isObj(entry)) {
      return {
        target: String(entry.target),
        ...(entry.published !== undefined ? { published: String(entry.published) } : {}),
        ...(entry.host_ip !== undefined ? { hostIp: String(entry.host_ip) } : {}),
      };
    }
    const parts = String(entry).split(':');
    const target = parts.pop() ?? '';
    const published = parts.pop();
    const hostIp = parts.length > 0 ? parts.join(':') : undefined;
    return { target, ...(published !== undefined ? { published } : {}), ...(hostIp !== undefined ? { hostIp } : {}) };
  });
}

function healthTest(service: Obj): string {
  const hc = obj(service.healthcheck, 'healthcheck');
  expect(hc.disable).not.toBe(true);
  const test = hc.test;
  if (typeof test === 'string') return test;
  if (!Array.isArray(test)) throw new Error('healthcheck.test missing');
  expect(['CMD', 'CMD-SHELL']).toContain(test[0]);
  return test.slice(1).map(String).join(' ');
}

function commandText(service: Obj): string {
  const cmd = service.command;
  return Array.isArray(cmd) ? cmd.map(String).join(' ') : String(cmd ?? '');
}

// ---------------------------------------------------------------------------

const SERVICES = ['postgresql', 'temporal', 'temporal-ui', 'migrate', 'web', 'worker'] as const;
const APP = ['migrate', 'web', 'worker'] as const;
const ENV = { TRAINYARD_SECRET: 'test-secret', POSTGRES_PASSWORD: 'test-password' };

let raw: Obj; // as written (interpolation not applied), merge keys resolved
let compose: Obj; // as Compose would see it with ENV set
let services: Record<string, Obj>;

beforeAll(() => {
  raw = obj(parse(read('docker-compose.yml'), { merge: true }), 'docker-compose.yml');
  compose = obj(interpolateTree(raw, ENV), 'docker-compose.yml');
  services = {};
  for (const [name, spec] of Object.entries(obj(compose.services, 'services'))) {
    services[name] = obj(spec, `services.${name}`);
  }
});

const svc = (name: string): Obj => {
  const s = services[name];
  if (!s) throw new Error(`service ${name} missing`);
  return s;
};

describe('docker-compose.yml', () => {
  it('interpolation helper behaves like Compose', () => {
    expect(interpolate('a$${B}c', {})).toBe('a${B}c');
    expect(interpolate('${X:-d}/${Y-e}', { Y: '' })).toBe('d/');
    expect(() => interpolate('${X:?set X}', { X: '' })).toThrow(/X is missing a value: set X/);
    expect(interpolate('${X:?set X}', { X: 'v' })).toBe('v');
  });

  it('has the six services of the production shape', () => {
    for (const name of SERVICES) expect(Object.keys(services)).toContain(name);
  });

  it('builds web, worker and migrate from the project Dockerfile as one image', () => {
    const images = new Set<string>();
    for (const name of APP) {
      const s = svc(name);
      const build = s.build;
      const context = typeof build === 'string' ? build : String(obj(build, `${name}.build`).context ?? '');
      const dockerfile = isObj(build) && typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile';
      expect([`.`, `./`]).toContain(context);
      expect(existsSync(join(root, context, dockerfile))).toBe(true);
      expect(dockerfile).toBe('Dockerfile');
      expect(typeof s.image).toBe('string');
      images.add(String(s.image));
    }
    expect(images.size).toBe(1);
  });

  it('runs the trainyard CLI command that matches each app service', () => {
    for (const name of APP) {
      expect(commandText(svc(name))).toMatch(new RegExp(`^npm run trainyard -- ${name}$`));
    }
  });

  it('points web and worker at the postgresql service and temporal:7233', () => {
    for (const name of ['web', 'worker', 'migrate']) {
      const env = environment(svc(name));
      const url = new URL(String(env.DATABASE_URL));
      expect(url.protocol).toMatch(/^postgres(ql)?:$/);
      expect(url.hostname).toBe('postgresql');
      expect(url.port === '' || url.port === '5432').toBe(true);
      expect(url.password).toBe(ENV.POSTGRES_PASSWORD);
      if (name !== 'migrate') expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
    }
  });

  it('gives Trainyard the credentials the postgresql service is created with', () => {
    const pg = environment(svc('postgresql'));
    const url = new URL(String(environment(svc('web')).DATABASE_URL));
    expect(decodeURIComponent(url.username)).toBe(pg.POSTGRES_USER ?? 'postgres');
    expect(decodeURIComponent(url.password)).toBe(pg.POSTGRES_PASSWORD);
    expect(url.pathname.slice(1)).toBe(pg.POSTGRES_DB ?? pg.POSTGRES_USER ?? 'postgres');
  });

  it('configures web and worker per DESIGN §7 (keys, data dir, no local machine)', () => {
    for (const name of ['web', 'worker']) {
      const s = svc(name);
      const env = environment(s);
      expect(env.TRAINYARD_LOCAL_MACHINE).toBe('false');
      expect(env.TEMPORAL_NAMESPACE).toBe('default');
      expect(env.TEMPORAL_UI_URL).toMatch(/^https?:\/\//);
      expect('TRAINYARD_ADMIN_PASSWORD' in env).toBe(true);
      // A key present with an empty string would mean "the password is empty";
      // unset must stay unset.
      expect(env.TRAINYARD_ADMIN_PASSWORD).not.toBe('');

      const keysDir = String(env.TRAINYARD_KEYS_DIR);
      const keys = mounts(s).find((m) => m.target === keysDir);
      expect(keys, `${name} mounts TRAINYARD_KEYS_DIR`).toBeDefined();
      expect(keys?.readOnly).toBe(true);

      const dataDir = String(env.TRAINYARD_DATA_DIR);
      const data = mounts(s).find((m) => m.target === dataDir);
      expect(data?.type, `${name} keeps TRAINYARD_DATA_DIR on a named volume`).toBe('volume');
    }
    expect(environment(svc('web')).PORT).toBe('3000');
  });

  it('requires TRAINYARD_SECRET: Compose refuses to start without it', () => {
    const rawServices = obj(raw.services, 'services');
    for (const name of APP) {
      const env = environment(obj(rawServices[name], name));
      expect(env.TRAINYARD_SECRET).toMatch(/^\$\{TRAINYARD_SECRET:\?[^}]+\}$/);
      expect(environment(svc(name)).TRAINYARD_SECRET).toBe(ENV.TRAINYARD_SECRET);
    }
    expect(() => interpolateTree(raw, { POSTGRES_PASSWORD: 'p' })).toThrow(MissingVariable);
    expect(() => interpolateTree(raw, { POSTGRES_PASSWORD: 'p', TRAINYARD_SECRET: '' })).toThrow(/TRAINYARD_SECRET/);
  });

  it('runs Temporal on PostgreSQL persistence in databases of its own', () => {
    const temporal = svc('temporal');
    expect(String(temporal.image)).toMatch(/^temporalio\/auto-setup:\d+\.\d+\.\d+$/);
    const env = environment(temporal);
    expect(['postgres12', 'postgres12_pgx']).toContain(env.DB);
    expect(env.POSTGRES_SEEDS).toBe('postgresql');
    expect(env.DB_PORT).toBe('5432');
    const pg = environment(svc('postgresql'));
    expect(env.POSTGRES_USER).toBe(pg.POSTGRES_USER);
    expect(env.POSTGRES_PWD).toBe(pg.POSTGRES_PASSWORD);
    // Separate from Trainyard's database, and from each other.
    const appDb = new URL(String(environment(svc('web')).DATABASE_URL)).pathname.slice(1);
    const dbName = env.DBNAME ?? 'temporal';
    const visibilityDb = env.VISIBILITY_DBNAME ?? 'temporal_visibility';
    expect(dbName).not.toBe(appDb);
    expect(visibilityDb).not.toBe(appDb);
    expect(visibilityDb).not.toBe(dbName);
    // The namespace auto-setup creates is the one the app uses.
    expect(env.DEFAULT_NAMESPACE ?? 'default').toBe(environment(svc('web')).TEMPORAL_NAMESPACE);
  });

  it('gives Temporal the dynamic config that turns on eager activity execution', () => {
    const temporal = svc('temporal');
    const file = String(environment(temporal).DYNAMIC_CONFIG_FILE_PATH);
    // auto-setup resolves the path against /etc/temporal.
    const conf = mounts(temporal).find((m) => m.type === 'bind' && m.target === `/etc/temporal/${file}`);
    expect(conf, 'dynamic config mounted where DYNAMIC_CONFIG_FILE_PATH points').toBeDefined();
    expect(conf?.readOnly).toBe(true);
    expect(read(String(conf?.source))).toMatch(/^system\.enableActivityEagerExecution:\n\s+- value: true$/m);
  });

  it('points temporal-ui at temporal and publishes port 8080', () => {
    const ui = svc('temporal-ui');
    expect(String(ui.image)).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    expect(environment(ui).TEMPORAL_ADDRESS).toBe('temporal:7233');
    const published = ports(ui).find((p) => p.target === '8080');
    expect(published?.published).toBe('8080');
    // The default TEMPORAL_UI_URL names the port the UI is published on.
    expect(new URL(String(environment(svc('web')).TEMPORAL_UI_URL)).port).toBe(published?.published);
  });

  it('starts services in dependency order with the designed conditions', () => {
    expect(dependsOn(svc('temporal'))).toMatchObject({ postgresql: 'service_healthy' });
    expect(dependsOn(svc('temporal-ui'))).toMatchObject({ temporal: 'service_healthy' });
    expect(dependsOn(svc('migrate'))).toMatchObject({ postgresql: 'service_healthy' });
    expect(Object.keys(dependsOn(svc('migrate')))).not.toContain('web');
    for (const name of ['web', 'worker']) {
      expect(dependsOn(svc(name))).toMatchObject({
        migrate: 'service_completed_successfully',
        temporal: 'service_healthy',
      });
    }
  });

  it('runs migrate once, not as a restarting service', () => {
    const restart = svc('migrate').restart;
    expect(restart === undefined || restart === 'no' || restart === 'on-failure').toBe(true);
  });

  it('health-checks postgresql, temporal and web', () => {
    expect(healthTest(svc('postgresql'))).toMatch(/\bpg_isready\b/);
    expect(healthTest(svc('temporal'))).toMatch(/\b(temporal operator cluster health|tctl .*cluster health)\b/);
    const web = healthTest(svc('web'));
    expect(web).toMatch(/\/healthz\b/);
    expect(web).toMatch(/^(node|wget) /);
    expect(web).not.toMatch(/\bcurl\b/); // not in the slim image
  });

  it('leaves web and worker free to scale', () => {
    for (const name of ['web', 'worker']) {
      const s = svc(name);
      expect(s.container_name, `${name} container_name`).toBeUndefined();
      expect(s.hostname, `${name} hostname`).toBeUndefined();
      for (const p of ports(s)) {
        // A fixed host port can be bound by only one replica.
        expect(p.published, `${name} publishes host port ${p.published}`).toBeUndefined();
      }
      const deploy = s.deploy;
      if (deploy !== undefined) {
        const replicas = obj(deploy, `${name}.deploy`).replicas;
        expect(replicas === undefined || (typeof replicas === 'number' && replicas >= 1)).toBe(true);
      }
    }
  });

  it('trusts X-Forwarded-For from its one proxy hop only, in a form the config accepts', () => {
    const env = environment(svc('web'));
    expect(env.TRUST_PROXY).toBe('1');
    expect(loadConfig({ TRUST_PROXY: String(env.TRUST_PROXY) }).trustProxy).toBe(1);
    // The proxy is the only way in: web publishes no port of its own.
    expect(ports(svc('web')).every((p) => p.published === undefined)).toBe(true);
  });

  it('publishes the web tier through a proxy that spreads requests over every replica', () => {
    const proxy = svc('proxy');
    const front = ports(proxy).find((p) => p.published !== undefined);
    expect(front?.published).toBe('3000');
    const conf = mounts(proxy).find((m) => m.type === 'bind' && m.target.startsWith('/etc/nginx/'));
    expect(conf, 'proxy config mounted').toBeDefined();
    const text = read(String(conf?.source))
      .split('\n')
      .map((line) => line.replace(/#.*$/, ''))
      .join('\n');
    // A variable in proxy_pass makes nginx re-resolve `web` through Docker's
    // DNS, so replicas added by --scale are reached without a reload.
    expect(text).toMatch(/resolver\s+127\.0\.0\.11\b/);
    const target = /set\s+(\$\w+)\s+http:\/\/web:3000\s*;/.exec(text);
    expect(target, 'upstream is web:3000 in a variable').not.toBeNull();
    expect(text).toContain(`proxy_pass ${target?.[1]};`);
  });

  it('declares named volumes and uses each of them', () => {
    const declared = Object.keys(obj(compose.volumes, 'volumes'));
    const used = new Set<string>();
    for (const s of Object.values(services)) {
      for (const m of mounts(s)) if (m.type === 'volume' && m.source !== '') used.add(m.source);
    }
    for (const name of used) expect(declared, `volume ${name} is declared`).toContain(name);
    for (const name of declared) expect([...used], `volume ${name} is used`).toContain(name);

    const pgData = mounts(svc('postgresql')).find((m) => m.target === '/var/lib/postgresql/data');
    expect(pgData?.type).toBe('volume');
    expect(declared).toContain(pgData?.source);

    const dataDir = String(environment(svc('worker')).TRAINYARD_DATA_DIR);
    const data = mounts(svc('worker')).find((m) => m.target === dataDir);
    expect(declared).toContain(data?.source);
    expect(data?.source).not.toBe(pgData?.source);
  });

  it('pins every image tag (no latest, no untagged image)', () => {
    for (const [name, s] of Object.entries(services)) {
      if (typeof s.image !== 'string') {
        expect(s.build, `${name} has neither image nor build`).toBeDefined();
        continue;
      }
      const image = s.image.split('@')[0] ?? '';
      const slash = image.lastIndexOf('/');
      const colon = image.lastIndexOf(':');
      expect(colon > slash, `${name}: ${s.image} has a tag`).toBe(true);
      const tag = image.slice(colon + 1);
      expect(tag, `${name}: ${s.image}`).not.toMatch(/^(latest|stable|main|master)?$/);
    }
  });
});

// ---------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}

function dockerfile(): Instruction[] {
  const lines = read('Dockerfile').split('\n');
  const out: Instruction[] = [];
  let current = '';
  for (const line of lines) {
    const trimmed = line.trim();
    if (current === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (current !== '' && trimmed.startsWith('#')) continue; // comment inside a continuation
    if (trimmed.endsWith('\\')) {
      current += `${trimmed.slice(0, -1)} `;
      continue;
    }
    current += trimmed;
    const m = /^(\w+)\s+([\s\S]*)$/.exec(current);
    if (m) out.push({ op: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').trim() });
    current = '';
  }
  return out;
}

describe('Dockerfile', () => {
  let steps: Instruction[];
  beforeAll(() => {
    steps = dockerfile();
  });

  const argv = (args: string): string => {
    if (args.startsWith('[')) return (JSON.parse(args) as string[]).join(' ');
    return args;
  };

  it('starts from a pinned Node 20 Debian image', () => {
    const from = steps.filter((s) => s.op === 'FROM');
    expect(from.length).toBeGreaterThan(0);
    const final = from[from.length - 1]?.args ?? '';
    expect(final).toMatch(/^node:20\.\d+\.\d+-(bookworm|bullseye|trixie)(-slim)?\b/);
  });

  it('installs production dependencies only, from the lockfile', () => {
    const runs = steps.filter((s) => s.op === 'RUN').map((s) => s.args);
    expect(runs.some((r) => /\bnpm ci\b[^&;]*--omit=dev\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm (install|i)\b/.test(r))).toBe(false);
    const copyLock = steps.findIndex((s) => s.op === 'COPY' && s.args.includes('package-lock.json'));
    const npmCi = steps.findIndex((s) => s.op === 'RUN' && /\bnpm ci\b/.test(s.args));
    expect(copyLock).toBeGreaterThanOrEqual(0);
    expect(copyLock).toBeLessThan(npmCi);
  });

  it('makes sure setsid (util-linux) and sh are present', () => {
    const runs = steps
      .filter((s) => s.op === 'RUN')
      .map((s) => s.args)
      .join('\n');
    expect(runs).toMatch(/util-linux/);
    expect(runs).toMatch(/command -v setsid/);
  });

  it('runs as a non-root user', () => {
    const users = steps.filter((s) => s.op === 'USER').map((s) => s.args.split(':')[0]);
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0']).not.toContain(users[users.length - 1]);
    // Switched before the command runs, not only in some earlier stage.
    const lastUser = steps.map((s) => s.op).lastIndexOf('USER');
    const lastFrom = steps.map((s) => s.op).lastIndexOf('FROM');
    expect(lastUser).toBeGreaterThan(lastFrom);
  });

  it('exposes 3000 and runs the trainyard CLI, web by default', () => {
    expect(steps.some((s) => s.op === 'EXPOSE' && s.args.split(/\s+/).includes('3000'))).toBe(true);
    const entrypoint =
      steps
        .filter((s) => s.op === 'ENTRYPOINT')
        .map((s) => argv(s.args))
        .pop() ?? '';
    const cmd =
      steps
        .filter((s) => s.op === 'CMD')
        .map((s) => argv(s.args))
        .pop() ?? '';
    const launched = `${entrypoint} ${cmd}`.trim();
    expect(launched).toMatch(/(^|\s)(npm run trainyard --|tsx bin\/trainyard\.ts)\s/);
    expect(launched).toMatch(/\bweb$/);
  });
});

describe('.dockerignore', () => {
  it('keeps host state, secrets and test artefacts out of the build context', () => {
    const entries = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim().replace(/^\/+|\/+$/g, ''))
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const path of ['node_modules', 'data', '.tools', '.git', '.env', 'keys', 'test-results']) {
      expect(entries, path).toContain(path);
    }
    // Nothing the image needs at run time is excluded.
    for (const path of ['package.json', 'package-lock.json', 'bin', 'db', 'workflows', 'activities', 'trainers']) {
      expect(entries, path).not.toContain(path);
    }
  });
});
