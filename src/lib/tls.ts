/**
 * TLS material for every listener. A configured cert/key pair is used as is; without one a self-signed pair for the
 * host name is made once in `${dataDir}/tls/` and kept, so clients that pinned it after the first warning keep
 * trusting it across restarts.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Where they came from: the configured files or the generated pair. */
  source: string;
  selfSigned: boolean;
}

export async function loadTls(opts: { cert?: string; key?: string; dataDir: string; hostname: string }): Promise<TlsMaterial> {
  if (opts.cert || opts.key) {
    if (!opts.cert || !opts.key) throw new Error('tls: cert and key must be given together');
    return { cert: await readFile(opts.cert), key: await readFile(opts.key), source: opts.cert, selfSigned: false };
  }
  const dir = join(opts.dataDir, 'tls');
  const certFile = join(dir, 'selfsigned-cert.pem');
  const keyFile = join(dir, 'selfsigned-key.pem');
  try {
    return { cert: await readFile(certFile), key: await readFile(keyFile), source: certFile, selfSigned: true };
  } catch {
    // none yet: make one below
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 10);
  const pems = await generate([{ name: 'commonName', value: opts.hostname }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: opts.hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  } as Parameters<typeof generate>[1]);
  // Write-then-rename so a crash never leaves half a key that the next start would fail on.
  await writeFile(keyFile + '.tmp', pems.private, { mode: 0o600 });
  await writeFile(certFile + '.tmp', pems.cert);
  await rename(keyFile + '.tmp', keyFile);
  await rename(certFile + '.tmp', certFile);
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private), source: certFile, selfSigned: true };
}
