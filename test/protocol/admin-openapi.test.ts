/**
 * schema/openapi.json is hand-kept: every route fastify registers on the admin and http listeners is in it (method
 * and path), and nothing else is; every $ref resolves.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

interface Doc {
  openapi: string;
  servers: unknown[];
  paths: Record<string, Record<string, unknown> & { servers?: unknown[] }>;
  components: { schemas: Record<string, unknown> };
}

const doc = JSON.parse(readFileSync(join(ROOT, 'schema/openapi.json'), 'utf8')) as Doc;
const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace']);
let server: TestServer;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.close();
});

/** `GET /api/domains/{name}` for each operation; `http` selects the paths served by the plain-HTTP listener. */
function documented(http: boolean): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    if (Boolean(item.servers) !== http) continue;
    for (const m of Object.keys(item)) if (METHODS.has(m)) out.push(`${m.toUpperCase()} ${path}`);
  }
  return out.sort();
}

const registered = (routes: { method: string; url: string }[]) =>
  routes.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`).sort();

test('is an OpenAPI 3.1 document', () => {
  assert.match(doc.openapi, /^3\.1\./);
  assert.ok(doc.servers.length > 0);
});

test('every admin route is documented, and every documented admin path is a route', () => {
  assert.deepEqual(documented(false), registered(server.admin.admin!.routes));
});

test('every autoconfig route (http listener) is documented, and only those', () => {
  assert.deepEqual(documented(true), registered(server.admin.http!.routes));
});

test('every $ref resolves and operationIds are unique', () => {
  const text = JSON.stringify(doc);
  for (const m of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) assert.ok(doc.components.schemas[m[1]], `missing schema ${m[1]}`);
  const ids = [...text.matchAll(/"operationId":"([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length);
});

test('path parameters are declared for every {param}', () => {
  for (const [path, item] of Object.entries(doc.paths)) {
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [m, o] of Object.entries(item)) {
      if (!METHODS.has(m)) continue;
      const params = ((o as { parameters?: { name: string; in: string }[] }).parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
      assert.deepEqual(params.sort(), [...names].sort(), `${m.toUpperCase()} ${path}`);
    }
  }
});

test('the https autoconfig listener serves the same documented routes as the http one', () => {
  assert.deepEqual(registered(server.admin.https!.routes), registered(server.admin.http!.routes));
});
