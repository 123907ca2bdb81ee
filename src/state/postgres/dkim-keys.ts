/**
 * DKIM signing keys shared by the nodes (issue 16; schema/migrations-postgres/060-dkim-keys.sql): one row per
 * domain, so "one key at a time per domain" is the primary key, and a rotation is one transaction (the new row
 * replaces the old one; every node signs with the new key from its next message on).
 *
 * The signer reads the table for every message it signs (one primary-key lookup, much cheaper than the RSA
 * signature that follows): no cache that could sign with a key an admin has just deleted, and no NOTIFY to miss.
 * Every failure is a TempFailure (PgState), which the DATA hook answers with 451 4.3.0.
 */
import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { DKIM_ALLOWED_BITS, DKIM_DEFAULT_BITS, DkimKeyError, defaultSelector, dkimRecord, normalizeSelector, type DkimRecord, type GenerateOptions } from '../../delivery/dkim.js';
import type { DkimKeyStore, NewDkimKey, StoredDkimKey } from '../../delivery/dkim-keys.js';
import { normalizeDomain } from '../../settings/validate.js';
import type { PgState } from './pool.js';

const generateKeyPairAsync = promisify(generateKeyPair);

interface Row {
  domain: string;
  selector: string;
  private_key: string;
  bits: number;
  created_at: Date;
}

export class PgDkimKeys implements DkimKeyStore {
  readonly kind = 'postgres' as const;

  constructor(private readonly pg: PgState) {}

  async signingKey(domains: string[]): Promise<{ domain: string; selector: string; pem: string } | null> {
    if (!domains.length) return null;
    const r = await this.pg.query<Row>('SELECT domain, selector, private_key FROM dkim_keys WHERE domain = ANY($1::text[])', [domains]);
    // The first of `domains` that has a key: the From domain before its parents.
    for (const d of domains) {
      const row = r.rows.find((x) => x.domain === d);
      if (row) return { domain: row.domain, selector: row.selector, pem: row.private_key };
    }
    return null;
  }

  async list(): Promise<StoredDkimKey[]> {
    const r = await this.pg.query<Row>('SELECT domain, selector, bits, created_at FROM dkim_keys ORDER BY domain');
    return r.rows.map((x) => ({ domain: x.domain, selector: x.selector, bits: x.bits, created: new Date(x.created_at) }));
  }

  async record(domainInput: string): Promise<DkimRecord | null> {
    const domain = normalizeDomain(domainInput);
    const r = await this.pg.query<Row>('SELECT domain, selector, private_key FROM dkim_keys WHERE domain = $1', [domain]);
    const row = r.rows[0];
    if (!row) return null;
    const pub = createPublicKey(createPrivateKey(row.private_key));
    return dkimRecord(row.domain, row.selector, pub.export({ type: 'spki', format: 'der' }), pub.asymmetricKeyDetails?.modulusLength ?? 0);
  }

  async generate(domainInput: string, opts: GenerateOptions = {}): Promise<NewDkimKey> {
    const domain = normalizeDomain(domainInput);
    const selector = normalizeSelector(opts.selector ?? defaultSelector(opts.now));
    const bits = opts.bits ?? DKIM_DEFAULT_BITS;
    if (!(DKIM_ALLOWED_BITS as readonly number[]).includes(bits)) {
      throw new DkimKeyError(`a DKIM key has ${DKIM_ALLOWED_BITS.join(', ')} bits (RFC 8301 §3.2 asks for at least 1024, 2048 recommended)`, 'invalid');
    }
    // Made before the transaction: a 4096-bit key takes seconds, and no row lock should wait for it.
    const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
      modulusLength: bits,
      publicExponent: 0x10001,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'der' },
    });
    const replaced = await this.pg.transaction(async (c) => {
      // FOR UPDATE: two admins generating for one domain at once on two nodes are served one after the other,
      // and the second sees the first one's key (refused without force, replaced with it).
      const old = await c.query<{ selector: string }>('SELECT selector FROM dkim_keys WHERE domain = $1 FOR UPDATE', [domain]);
      if (old.rows.length && !opts.force) {
        throw new DkimKeyError(`${domain} already has a DKIM key (selector ${old.rows.map((x) => x.selector).join(', ')}); give --force to replace it`, 'exists');
      }
      // ON CONFLICT: a first key for the domain made on another node between our SELECT (no row to lock) and here.
      const ins = await c.query(
        `INSERT INTO dkim_keys (domain, selector, private_key, bits) VALUES ($1, $2, $3, $4)
         ON CONFLICT (domain) DO UPDATE SET selector = excluded.selector, private_key = excluded.private_key, bits = excluded.bits, created_at = now()
           WHERE $5::boolean
         RETURNING domain`,
        [domain, selector, privateKey, bits, opts.force === true],
      );
      if (!ins.rowCount) throw new DkimKeyError(`${domain} already has a DKIM key; give --force to replace it`, 'exists');
      return old.rows.map((x) => x.selector).filter((s) => s !== selector);
    });
    return { ...dkimRecord(domain, selector, publicKey, bits), replaced };
  }

  async remove(domainInput: string): Promise<string[]> {
    const domain = normalizeDomain(domainInput);
    const r = await this.pg.query<{ selector: string }>('DELETE FROM dkim_keys WHERE domain = $1 RETURNING selector', [domain]);
    return r.rows.map((x) => x.selector);
  }

  async close(): Promise<void> {}
}
