/**
 * A request to the admin API of a test server over HTTPS (the server's self-signed certificate is trusted, its
 * name not checked: it names the hostname and we dial 127.0.0.1), as the fixture's admin by default.
 */
import { request } from 'node:https';
import type { TestServer } from './server.ts';

export const ADMIN_AUTH = { user: 'admin', password: 'Adm1n!Secret' };

export interface AdminResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** Basic credentials, an automation token (Bearer), or null for no Authorization header. */
export type AdminAuth = { user: string; password: string } | { token: string } | null;

/**
 * A request with a JSON `body` (or a `raw` one, sent as is, for malformed-input tests), as `auth` (default admin),
 * with any other `headers` (a session cookie, a CSRF token, an Origin, If-None-Match …).
 */
export function adminRequest(
  server: TestServer,
  method: string,
  path: string,
  opts: { auth?: AdminAuth; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<AdminResponse> {
  const auth = opts.auth === undefined ? ADMIN_AUTH : opts.auth;
  const headers: Record<string, string> = { ...opts.headers };
  if (auth && 'token' in auth) headers.authorization = `Bearer ${auth.token}`;
  else if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
  const payload = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.ports.admin, method, path, headers, ca: server.tls.cert, checkServerIdentity: () => undefined },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export function adminCall(
  server: TestServer,
  method: string,
  path: string,
  body?: unknown,
  auth: { user: string; password: string } = ADMIN_AUTH,
): Promise<AdminResponse> {
  return adminRequest(server, method, path, { body, auth });
}
