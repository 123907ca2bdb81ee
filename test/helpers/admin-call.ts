/**
 * A request to the admin API of a test server over HTTPS (the server's self-signed certificate is trusted, its
 * name not checked: it names the hostname and we dial 127.0.0.1), as the fixture's admin by default.
 */
import { request } from 'node:https';
import type { TestServer } from './server.ts';

export const ADMIN_AUTH = { user: 'admin', password: 'Adm1n!Secret' };

export interface AdminResponse {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export function adminCall(
  server: TestServer,
  method: string,
  path: string,
  body?: unknown,
  auth: { user: string; password: string } = ADMIN_AUTH,
): Promise<AdminResponse> {
  const headers: Record<string, string> = { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}` };
  const payload = body === undefined ? undefined : JSON.stringify(body);
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
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
