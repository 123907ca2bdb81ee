/**
 * A `postern serve` node of a two-node test (issue 16): its listener block (port 25 and the admin API on free
 * loopback ports, nothing else), the node started as a real process, and its admin API over HTTPS (the node's
 * self-signed certificate is not verified: the test dials 127.0.0.1).
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { TestContext } from 'node:test';
import { ADMIN_AUTH } from './admin-call.ts';
import { startProcessServer, type ProcessServer } from './process-server.ts';

export interface ClusterNode {
  server: ProcessServer;
  adminPort: number;
}

/** The listeners of a test node: SMTP on port 25's role and the admin API, each on a free loopback port. */
export const NODE_LISTENERS = {
  smtp: { port: 0, host: '127.0.0.1' },
  admin: { port: 0, host: '127.0.0.1' },
  submission: false,
  smtps: false,
  imap: false,
  imaps: false,
  pop3: false,
  pop3s: false,
  http: false,
  https: false,
  managesieve: false,
} as const;

/** Starts `postern serve` on a config file; the node is stopped when `t` ends. */
export async function startClusterNode(t: TestContext, file: string): Promise<ClusterNode> {
  const server = await startProcessServer(file, { owner: t, timeoutMs: 90_000 });
  // serve prints the admin listener as a URL ("  admin      https://127.0.0.1:PORT/api …").
  const m = /^ {2}admin\s+https:\/\/[^\s]+:(\d+)\//m.exec(server.stdout());
  assert.ok(m, `no admin listener in the banner:\n${server.stdout()}`);
  return { server, adminPort: Number(m[1]) };
}

/** A request to a node's admin API, as the fixture's admin unless `auth` is false; the body parsed when JSON. */
export function nodeAdmin(node: ClusterNode, method: string, path: string, body?: unknown, auth = true): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = `Basic ${Buffer.from(`${ADMIN_AUTH.user}:${ADMIN_AUTH.password}`).toString('base64')}`;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: node.adminPort, method, path, headers, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.end(payload);
  });
}
