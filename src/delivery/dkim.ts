/**
 * DKIM signing of outgoing mail (RFC 6376) with one RSA key per sending domain.
 *
 * Keys live in `${dataDir}/dkim/<domain>.<selector>.key` (PKCS#8 PEM, mode 0600, directory 0700). The selector is a
 * single DNS label so the file name parses from the end. The default selector is `postern-YYYYMMDD` (the day the key
 * was made): a rotated key gets a new selector, so a resolver that still caches the old record never pairs it with
 * the new key.
 *
 * A domain has one key at a time: `generateDkimKey` refuses to add a second one without `force`, and with `force`
 * it removes the domain's other keys (their DNS records can be withdrawn a few days later, once mail signed with
 * them has been delivered). Should a directory still hold several keys for a domain (copied by hand), the newest
 * file wins.
 *
 * The signer picks the key of the From header's domain (RFC 7489 §3.1 alignment), else of a parent domain (relaxed
 * alignment: a key for corp.example also signs mail from sales.corp.example). Keys are cached and reloaded when
 * their file or the directory changes (one stat of each per message, far cheaper than the RSA signature).
 */
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { promisify } from 'node:util';
import type { dkimSign } from 'mailauth';
import { loadMailauth } from '../lib/mailauth.js';
import type { Logger } from '../lib/logger.js';
import type { DkimKeySource } from './dkim-keys.js';
import { normalizeDomain } from '../settings/validate.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const DKIM_DEFAULT_BITS = 2048;
export const DKIM_ALLOWED_BITS = [1024, 2048, 3072, 4096] as const;

/** Header fields signed when present (RFC 6376 §5.4.1's recommendations, minus the trace fields). */
export const DKIM_SIGNED_HEADERS = [
  'From',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'Reply-To',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
];

const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export class DkimKeyError extends Error {
  constructor(
    message: string,
    readonly reason: 'exists' | 'invalid' | 'not-found',
  ) {
    super(message);
    this.name = 'DkimKeyError';
  }
}

export interface DkimRecord {
  domain: string;
  selector: string;
  /** `<selector>._domainkey.<domain>` (no trailing dot). */
  name: string;
  /** The TXT value as one string: `v=DKIM1; k=rsa; p=…`. */
  value: string;
  /** The value cut into character-strings of at most 255 bytes (RFC 1035 §3.3.14, RFC 6376 §3.6.2.2). */
  strings: string[];
  /** A BIND zone-file line: `name. IN TXT ( "…" "…" )`. */
  zoneLine: string;
  /** Key size in bits. */
  bits: number;
}

export interface DkimKeyInfo {
  domain: string;
  selector: string;
  path: string;
  bits: number;
  /** When the key file was written. */
  created: Date;
}

export interface GenerateOptions {
  selector?: string;
  bits?: number;
  /** Replace the domain's existing key(s). */
  force?: boolean;
  /** For the default selector; default now. */
  now?: Date;
}

export interface GeneratedKey extends DkimRecord {
  path: string;
  /** Selectors of the keys this one replaced (force). */
  replaced: string[];
}

export function dkimDir(dataDir: string): string {
  return join(dataDir, 'dkim');
}

/** `postern-YYYYMMDD` in UTC. */
export function defaultSelector(now = new Date()): string {
  return `postern-${now.toISOString().slice(0, 10).replace(/-/g, '')}`;
}

export function normalizeSelector(input: string): string {
  const s = input.trim().toLowerCase();
  if (!SELECTOR.test(s)) {
    throw new DkimKeyError(`${JSON.stringify(input)} is not a valid selector: expected one DNS label (letters, digits, hyphens)`, 'invalid');
  }
  return s;
}

function keyFile(dataDir: string, domain: string, selector: string): string {
  return join(dkimDir(dataDir), `${domain}.${selector}.key`);
}

/** `corp.example.postern-20260101.key` → { domain, selector }; anything else → null. */
function parseKeyFileName(file: string): { domain: string; selector: string } | null {
  const m = /^(.+)\.([a-z0-9-]+)\.key$/.exec(file);
  if (!m || !SELECTOR.test(m[2])) return null;
  try {
    return { domain: normalizeDomain(m[1]), selector: m[2] };
  } catch {
    return null;
  }
}

/** The TXT record for a public key (SPKI DER or a KeyObject). */
export function dkimRecord(domain: string, selector: string, publicKeyDer: Buffer, bits: number): DkimRecord {
  const name = `${selector}._domainkey.${domain}`;
  const value = `v=DKIM1; k=rsa; p=${publicKeyDer.toString('base64')}`;
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
  const zoneLine = `${name}. IN TXT ( ${strings.map((s) => `"${s}"`).join(' ')} )`;
  return { domain, selector, name, value, strings, zoneLine, bits };
}

function recordFromPrivatePem(domain: string, selector: string, pem: string): DkimRecord {
  const pub = createPublicKey(createPrivateKey(pem));
  const der = pub.export({ type: 'spki', format: 'der' });
  return dkimRecord(domain, selector, der, pub.asymmetricKeyDetails?.modulusLength ?? 0);
}

async function readDirSafe(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

interface KeyFileEntry {
  domain: string;
  selector: string;
  path: string;
  mtimeMs: number;
}

/** Every key file of the directory, grouped by domain, newest first. */
async function scanKeys(dataDir: string): Promise<Map<string, KeyFileEntry[]>> {
  const byDomain = new Map<string, KeyFileEntry[]>();
  for (const file of await readDirSafe(dkimDir(dataDir))) {
    const parsed = parseKeyFileName(file);
    if (!parsed) continue;
    const path = join(dkimDir(dataDir), file);
    let mtimeMs: number;
    try {
      const st = await fsp.stat(path);
      if (!st.isFile()) continue;
      mtimeMs = st.mtimeMs;
    } catch {
      continue; // removed meanwhile
    }
    const list = byDomain.get(parsed.domain) ?? [];
    list.push({ ...parsed, path, mtimeMs });
    byDomain.set(parsed.domain, list);
  }
  for (const list of byDomain.values()) list.sort((a, b) => b.mtimeMs - a.mtimeMs || a.selector.localeCompare(b.selector));
  return byDomain;
}

/** Writes `data` to `path` with mode 0600 via a temp file; with `exclusive`, fails with EEXIST if `path` exists. */
async function writeKeyFile(path: string, data: string, exclusive: boolean): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await fsp.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (exclusive) {
      await fsp.link(tmp, path);
      await fsp.unlink(tmp);
    } else {
      await fsp.rename(tmp, path);
    }
  } catch (err) {
    await fsp.unlink(tmp).catch(() => {});
    throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Makes a key for `domain` and returns the record to publish. Throws DkimKeyError('exists') when the domain has a
 * key and `force` is not set, DkimKeyError('invalid') for a bad selector or size, SettingsError for a bad domain.
 */
export async function generateDkimKey(dataDir: string, domainInput: string, opts: GenerateOptions = {}): Promise<GeneratedKey> {
  const domain = normalizeDomain(domainInput);
  const selector = normalizeSelector(opts.selector ?? defaultSelector(opts.now));
  const bits = opts.bits ?? DKIM_DEFAULT_BITS;
  if (!(DKIM_ALLOWED_BITS as readonly number[]).includes(bits)) {
    throw new DkimKeyError(`a DKIM key has ${DKIM_ALLOWED_BITS.join(', ')} bits (RFC 8301 §3.2 asks for at least 1024, 2048 recommended)`, 'invalid');
  }
  const dir = dkimDir(dataDir);
  const existing = (await scanKeys(dataDir)).get(domain) ?? [];
  if (existing.length && !opts.force) {
    throw new DkimKeyError(
      `${domain} already has a DKIM key (selector ${existing.map((k) => k.selector).join(', ')}); give --force to replace it`,
      'exists',
    );
  }
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });

  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const path = keyFile(dataDir, domain, selector);
  try {
    await writeKeyFile(path, privateKey, !opts.force);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new DkimKeyError(`${domain} already has a DKIM key (selector ${selector}); give --force to replace it`, 'exists');
    }
    throw err;
  }
  const replaced: string[] = [];
  for (const old of existing) {
    if (old.path === path) continue;
    await fsp.unlink(old.path).catch(() => {});
    replaced.push(old.selector);
  }
  await syncDir(dir);
  return { ...dkimRecord(domain, selector, publicKey, bits), path, replaced };
}

/** The key a domain signs with (the newest file when several), or null. */
export async function findDkimKey(dataDir: string, domainInput: string): Promise<(DkimKeyInfo & { privateKey: string }) | null> {
  const domain = normalizeDomain(domainInput);
  const entry = (await scanKeys(dataDir)).get(domain)?.[0];
  if (!entry) return null;
  const privateKey = await fsp.readFile(entry.path, 'utf8');
  const bits = createPrivateKey(privateKey).asymmetricKeyDetails?.modulusLength ?? 0;
  return { domain, selector: entry.selector, path: entry.path, bits, created: new Date(entry.mtimeMs), privateKey };
}

/** The record to publish for the domain's current key, or null when it has none. */
export async function dkimRecordFor(dataDir: string, domainInput: string): Promise<(DkimRecord & { path: string }) | null> {
  const key = await findDkimKey(dataDir, domainInput);
  if (!key) return null;
  return { ...recordFromPrivatePem(key.domain, key.selector, key.privateKey), path: key.path };
}

/** Every domain's signing key, sorted by domain. Unreadable files are listed with bits 0. */
export async function listDkimKeys(dataDir: string): Promise<DkimKeyInfo[]> {
  const out: DkimKeyInfo[] = [];
  const byDomain = await scanKeys(dataDir);
  for (const domain of [...byDomain.keys()].sort()) {
    const entry = byDomain.get(domain)![0];
    let bits = 0;
    try {
      bits = createPrivateKey(await fsp.readFile(entry.path, 'utf8')).asymmetricKeyDetails?.modulusLength ?? 0;
    } catch {
      /* shown as 0 bits: the file is not a key */
    }
    out.push({ domain, selector: entry.selector, path: entry.path, bits, created: new Date(entry.mtimeMs) });
  }
  return out;
}

/** Unfolded header section of a message (up to the first empty line). */
function headerFields(message: Buffer): { name: string; value: string }[] {
  let end = message.indexOf('\r\n\r\n');
  if (end < 0) end = message.indexOf('\n\n');
  const head = message.subarray(0, end < 0 ? message.length : end).toString('latin1');
  const fields: { name: string; value: string }[] = [];
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1].value += line;
    else {
      const colon = line.indexOf(':');
      if (colon > 0) fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1) });
    }
  }
  return fields;
}

/** The domain of the (first) address in the From header, lower-case ASCII; null when there is none. */
export function headerFromDomain(message: Buffer): string | null {
  const from = headerFields(message).find((f) => f.name === 'from');
  if (!from) return null;
  // Drop quoted display names and comments, then take the first <addr-spec> or bare address.
  const v = from.value.replace(/"(?:[^"\\]|\\.)*"/g, '').replace(/\([^()]*\)/g, '');
  const angle = /<([^<>]*)>/.exec(v);
  const addr = (angle ? angle[1] : (v.split(',')[0] ?? '')).trim();
  const at = addr.lastIndexOf('@');
  if (at < 0) return null;
  const domain = addr.slice(at + 1).trim().replace(/\.$/, '').toLowerCase();
  if (!domain) return null;
  return /[^\x00-\x7f]/.test(domain) ? domainToASCII(domain) || null : domain;
}

export interface DkimSignerOptions {
  dataDir: string;
  /** The signer logs with component `delivery`, or the caller's logger's component. */
  log: Logger;
  /**
   * Where the keys are when not the key files of dataDir (state postgres: the cluster's table, src/delivery/
   * dkim-keys.ts). Its TempFailure is not "no key": sign() rejects with it, and the DATA hook answers 451.
   */
  keys?: DkimKeySource;
}

interface CachedKey {
  selector: string;
  path: string;
  ino: number;
  mtimeMs: number;
  size: number;
  pem: string;
}

/** Signs outgoing mail with the key of its From domain. */
export class DkimSigner {
  private readonly dataDir: string;
  private readonly log: Logger;
  private index: Map<string, KeyFileEntry[]> = new Map();
  private indexStamp = '';
  private indexDirty = true;
  private readonly keys = new Map<string, CachedKey>();
  private readonly source: DkimKeySource | undefined;

  constructor(opts: DkimSignerOptions) {
    this.dataDir = opts.dataDir;
    this.log = opts.log;
    this.source = opts.keys;
  }

  /** The key of the domain or a parent domain from `source`: a failure of the store rejects (TempFailure). */
  private async sourceKeyFor(domain: string): Promise<{ signingDomain: string; selector: string; privateKey: string } | null> {
    const labels = domain.split('.');
    const candidates: string[] = [];
    for (let i = 0; i <= labels.length - 2; i++) candidates.push(labels.slice(i).join('.'));
    const key = await this.source!.signingKey(candidates);
    return key ? { signingDomain: key.domain, selector: key.selector, privateKey: key.pem } : null;
  }

  /** The domain's key entry, looking at parent domains too (relaxed alignment). */
  private async entryFor(domain: string): Promise<KeyFileEntry | null> {
    await this.refreshIndex();
    const labels = domain.split('.');
    for (let i = 0; i <= labels.length - 2; i++) {
      const entry = this.index.get(labels.slice(i).join('.'))?.[0];
      if (entry) return entry;
    }
    return null;
  }

  /** Re-reads the directory when its mtime changed (or changed too recently to trust: coarse timestamps). */
  private async refreshIndex(): Promise<void> {
    let stamp = 'absent';
    let mtimeMs = 0;
    try {
      const st = await fsp.stat(dkimDir(this.dataDir));
      stamp = `${st.ino}:${st.mtimeMs}`;
      mtimeMs = st.mtimeMs;
    } catch {
      /* no directory: no keys */
    }
    if (stamp === this.indexStamp && !this.indexDirty) return;
    this.index = stamp === 'absent' ? new Map() : await scanKeys(this.dataDir);
    this.indexStamp = stamp;
    const live = new Set([...this.index.values()].flat().map((e) => e.path));
    for (const path of this.keys.keys()) if (!live.has(path)) this.keys.delete(path);
    this.indexDirty = Date.now() - mtimeMs < 2000;
  }

  private async keyFor(entry: KeyFileEntry): Promise<CachedKey | null> {
    let st;
    try {
      st = await fsp.stat(entry.path);
    } catch {
      this.indexDirty = true;
      return null;
    }
    const cached = this.keys.get(entry.path);
    if (cached && cached.ino === st.ino && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached;
    const pem = await fsp.readFile(entry.path, 'utf8');
    createPrivateKey(pem); // throws on a damaged file, before it is cached
    const key: CachedKey = { selector: entry.selector, path: entry.path, ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, pem };
    this.keys.set(entry.path, key);
    return key;
  }

  /**
   * The message with a DKIM-Signature prepended (relaxed/relaxed, rsa-sha256) when there is a key for its From
   * domain (`fromDomain`, else read from the From header); the message unchanged otherwise. A key that cannot
   * be used is logged and the message goes out unsigned: a missing signature delays nothing, a bounce would.
   */
  async sign(message: Buffer, fromDomain?: string): Promise<Buffer> {
    const raw = fromDomain ?? headerFromDomain(message);
    if (!raw) return message;
    const domain = raw.trim().toLowerCase().replace(/\.$/, '');
    let signature: { signingDomain: string; selector: string; privateKey: string };
    if (this.source) {
      // Not caught: a store that cannot answer must not turn into mail sent unsigned.
      const found = await this.sourceKeyFor(domain);
      if (!found) return message;
      signature = found;
    } else {
      let entry: KeyFileEntry | null;
      let key: CachedKey | null;
      try {
        entry = await this.entryFor(domain);
        if (!entry) return message;
        key = await this.keyFor(entry);
        if (!key) return message;
      } catch (err) {
        this.log.error({ domain, err: (err as Error).message }, 'DKIM key unusable; sending unsigned');
        return message;
      }
      signature = { signingDomain: entry.domain, selector: key.selector, privateKey: key.pem };
    }
    let result: Awaited<ReturnType<typeof dkimSign>>;
    try {
      result = await (await loadMailauth()).dkimSign(message, {
        ...signature,
        canonicalization: 'relaxed/relaxed',
        algorithm: 'rsa-sha256',
        // mailauth 4 reads the list colon-separated (an array would fall back to its defaults), whatever its types say.
        headerList: DKIM_SIGNED_HEADERS.join(':') as unknown as string[],
        // Without signTime mailauth 4 reads the clock for t= twice: once for the header it hashes and signs, once
        // for the header it returns, after the RSA signature. When a second boundary falls in between (about 1 in
        // 500 messages, more under load) the sent t= is not the signed one and every verifier says bad signature.
        signTime: new Date(),
        signatureData: [signature],
      });
    } catch (err) {
      this.log.error({ domain: signature.signingDomain, selector: signature.selector, err: (err as Error).message }, 'DKIM signing failed; sending unsigned');
      return message;
    }
    if (result.errors.length || !result.signatures.trim()) {
      const first = result.errors[0] as unknown as { err?: Error } | undefined;
      this.log.error({ domain: signature.signingDomain, selector: signature.selector, err: first?.err?.message ?? String(first) }, 'DKIM signing failed; sending unsigned');
      return message;
    }
    return Buffer.concat([Buffer.from(result.signatures, 'latin1'), message]);
  }
}
