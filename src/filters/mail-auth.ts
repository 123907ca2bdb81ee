/**
 * Mail authentication stage (data phase): SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and ARC verification
 * of mail arriving on port 25, with mailauth, using the resolvers of `config.dns`. It adds one
 * `Authentication-Results` field (RFC 8601) and tags `{ spf, dkim, dmarc }`, and refuses the message only when
 * `filter.dmarc.rejectOnPolicy` is on, DMARC fails and the From domain publishes p=reject.
 *
 * Not checked: the submission listeners and authenticated sessions (our own users' mail is signed, not verified),
 * and clients in `smtp.relayFrom` / `smtp.trustedNetworks` or on loopback (DESIGN.md §7: loopback is always
 * trusted) — our own printers and servers send with our domain from addresses our SPF does not list, and must not
 * be refused by our own DMARC policy. `checkTrusted: true` checks them anyway (tests connect from 127.0.0.1).
 *
 * Temporary beats wrong (DESIGN.md §6): a DNS failure gives `temperror` results and never a rejection. DMARC fails
 * when neither SPF nor DKIM passes aligned, so a timed-out lookup could be what made it fail: when the SPF check
 * of an aligned envelope domain, or an aligned DKIM signature, ended in temperror, the policy is not applied
 * (unaligned ones are left out: a forger controls their DNS, not the DNS of the domain being forged).
 * The whole check has a time budget; past it the results are temperror too.
 *
 * mailauth throwing (a bug, a message it cannot parse) is not a DNS answer: with rejectOnPolicy on the stage
 * throws, so the pipeline applies its failure policy (451 by default) rather than let a crafted message slip past
 * DMARC; with it off the stage only annotates, and the message goes on without the field (logged).
 *
 * Authentication-Results fields with our authserv-id that arrive with the message are removed (RFC 8601 §5) by
 * the SMTP data hook before any stage runs, on every listener, also where this stage does not check
 * (src/filters/auth-results.ts); the verdict can only add fields.
 */
import { inNetworks } from '../lib/networks.js';
import { Resolver } from 'node:dns/promises';
import type { AuthenticateResult, DNSResolver } from 'mailauth';
import { loadMailauth } from '../lib/mailauth.js';
import type { Logger } from '../lib/logger.js';
import type { Settings } from '../settings/store.js';
import { ACCEPT, type FilterContext, type FilterStage, type FilterVerdict } from './types.js';

export interface MailAuthDnsOptions {
  /** Resolvers as `ip` or `ip:port`; default the system ones (config `dns.servers`). */
  servers?: string[];
  /** Budget of one lookup (config `dns.timeoutMs`); default 5000. */
  timeoutMs?: number;
}

export interface MailAuthStageOptions {
  settings: Pick<Settings, 'get'>;
  dns: MailAuthDnsOptions;
  /** Our host name: the authserv-id of Authentication-Results and the SPF receiver name. */
  hostname: string;
  /** A logger with component `filter`; the stage adds `stage: 'mail-auth'`. */
  log: Logger;
  /** Also check loopback, smtp.relayFrom and smtp.trustedNetworks clients. Default false. */
  checkTrusted?: boolean;
  /** Time for all the checks of one message; default 4 × timeoutMs. */
  budgetMs?: number;
  /** For DMARC pct sampling (RFC 7489 §6.6.4); default Math.random. */
  random?: () => number;
}

export type AuthResultValue = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy' | string;

export type MailAuthTags = {
  spf: AuthResultValue;
  dkim: AuthResultValue;
  dmarc: AuthResultValue;
  /** The policy of the From domain when it has one (none, quarantine, reject). */
  dmarcPolicy?: string;
  /** The From header's domain. */
  fromDomain?: string;
};


function normalizeIp(ip: string): string {
  const s = ip.trim().toLowerCase().replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  return mapped ? mapped[1] : s;
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || /^127\./.test(ip);
}

const BODY_HASH_MISMATCH = 'body hash did not verify';

/**
 * mailauth, like Gmail, reports a body hash mismatch as `neutral`. RFC 6376 §6.1.3 makes it a PERMFAIL, which
 * RFC 8601 §2.7.1 writes `fail` ("the signature failed the verification test"; neutral is for signatures that
 * could not be processed), so the result is corrected before it is reported.
 */
function fixBodyHashResults(r: AuthenticateResult): void {
  for (const d of r.dkim?.results ?? []) {
    if (d.status?.result === 'neutral' && d.status.comment === BODY_HASH_MISMATCH) {
      d.status.result = 'fail';
      d.info = d.info.replace(/^dkim=neutral\b/, 'dkim=fail');
    }
  }
}

/**
 * The Authentication-Results value (RFC 8601 §2.2) in mailauth's order: the DKIM signatures, SPF, ARC, DMARC.
 * Built from mailauth's per-method texts (rather than taken from its `headers`) so that the corrected DKIM results
 * show. One unfolded line: the pipeline's applyMarks folds header values at spaces.
 */
function authResultsValue(hostname: string, r: AuthenticateResult): string {
  const rows = [...(r.dkim?.results ?? []).map((d) => d.info), r.spf ? r.spf.info : '', r.arc ? (r.arc.info ?? '') : '', r.dmarc ? r.dmarc.info : ''];
  const clean = rows.map((row) => row.replace(/\s+/g, ' ').trim()).filter(Boolean);
  return `${hostname}; ${clean.length ? clean.join('; ') : 'none'}`;
}

/** d is `org` or below it (relaxed alignment, RFC 7489 §3.1; strict is a subset, so this errs to "aligned"). */
function alignedWith(d: string | undefined | false, org: string): boolean {
  if (!d) return false;
  const x = d.toLowerCase().replace(/\.$/, '');
  return x === org || x.endsWith(`.${org}`);
}

function dkimSummary(r: AuthenticateResult): AuthResultValue {
  const results = r.dkim?.results ?? [];
  if (!results.length) return 'none';
  if (results.some((x) => x.status?.result === 'pass')) return 'pass';
  return results[0].status?.result ?? 'none';
}

function domainOf(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const at = address.lastIndexOf('@');
  const d = (at >= 0 ? address.slice(at + 1) : address).trim().toLowerCase().replace(/\.$/, '');
  return d || undefined;
}

export function mailAuthStage(opts: MailAuthStageOptions): FilterStage {
  const timeoutMs = opts.dns.timeoutMs ?? 5000;
  const budgetMs = opts.budgetMs ?? 4 * timeoutMs;
  const random = opts.random ?? Math.random;
  // c-ares doubles the timeout on its retry: t + 2t fits one lookup's budget, and one lost UDP packet is retried.
  const dns = new Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / 3)), tries: 2 });
  if (opts.dns.servers?.length) dns.setServers(opts.dns.servers);
  const resolver: DNSResolver = (name, rrtype) => dns.resolve(name, rrtype as 'TXT') as Promise<string[][]>;
  const log = opts.log.child({ stage: 'mail-auth' });

  const isTrusted = (ip: string): boolean => {
    if (isLoopback(ip)) return true;
    return inNetworks([...opts.settings.get('smtp.relayFrom'), ...opts.settings.get('smtp.trustedNetworks')], ip);
  };

  const timedOut = (ctx: FilterContext): FilterVerdict => {
    // A property value is a token or an addr-spec (RFC 8601 §2.2); anything odder is left out rather than escaped.
    const mailfrom = ctx.from && /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+$/.test(ctx.from) ? ` smtp.mailfrom=${ctx.from}` : '';
    const comment = '(checks timed out)';
    const value = `${opts.hostname}; spf=temperror ${comment}${mailfrom}; dkim=temperror ${comment}; dmarc=temperror ${comment}`;
    const tags: MailAuthTags = { spf: 'temperror', dkim: 'temperror', dmarc: 'temperror' };
    return { action: 'mark', headers: [['Authentication-Results', value]], tags };
  };

  return {
    name: 'mail-auth',
    phase: 'data',
    async check(ctx: FilterContext): Promise<FilterVerdict> {
      if (ctx.client.listener !== 'smtp' || ctx.client.user || !ctx.message) return ACCEPT;
      const ip = normalizeIp(ctx.client.address);
      if (!opts.checkTrusted && isTrusted(ip)) return ACCEPT;
      const rejectOnPolicy = opts.settings.get('filter.dmarc.rejectOnPolicy');

      const message = ctx.message;
      let timer: NodeJS.Timeout | undefined;
      let result: AuthenticateResult | 'timeout';
      try {
        result = await Promise.race([
          loadMailauth().then(({ authenticate }) =>
            authenticate(message, {
              ip,
              ...(ctx.client.helo ? { helo: ctx.client.helo } : {}),
              ...(ctx.from ? { sender: ctx.from } : {}),
              mta: opts.hostname,
              resolver,
              disableBimi: true,
            }),
          ),
          new Promise<'timeout'>((resolve) => {
            timer = setTimeout(() => resolve('timeout'), budgetMs);
          }),
        ]);
      } catch (err) {
        log.error({ id: ctx.id, client: ip, err: (err as Error).message }, 'mail authentication failed');
        if (rejectOnPolicy) throw err;
        return { action: 'accept', tags: { mailAuthError: (err as Error).message } };
      } finally {
        clearTimeout(timer);
      }
      if (result === 'timeout') {
        log.warn({ id: ctx.id, client: ip, budgetMs }, 'mail authentication timed out: temperror');
        return timedOut(ctx);
      }

      fixBodyHashResults(result);
      const spf = result.spf ? result.spf.status.result : 'none';
      const dkim = dkimSummary(result);
      const dmarc = result.dmarc ? result.dmarc.status.result : 'none';
      const fromDomain = domainOf(result.dkim?.headerFrom?.length === 1 ? result.dkim.headerFrom[0] : undefined);
      const tags: MailAuthTags = {
        spf,
        dkim,
        dmarc,
        ...(result.dmarc && result.dmarc.policy ? { dmarcPolicy: result.dmarc.policy } : {}),
        ...(fromDomain ? { fromDomain } : {}),
      };
      const headers: [string, string][] = [['Authentication-Results', authResultsValue(opts.hostname, result)]];
      const verdict: FilterVerdict = { action: 'mark', headers, tags };

      if (!rejectOnPolicy || !result.dmarc || dmarc !== 'fail' || result.dmarc.policy !== 'reject') return verdict;

      const org = (result.dmarc.domain || fromDomain || '').toLowerCase();
      const spfTemp = spf === 'temperror' && result.spf && alignedWith(result.spf.domain, org);
      const dkimTemp = (result.dkim?.results ?? []).some((r) => r.status?.result === 'temperror' && alignedWith(r.signingDomain, org));
      if (spfTemp || dkimTemp) {
        log.info({ id: ctx.id, client: ip, domain: fromDomain }, 'DMARC failed with an aligned temperror: policy not applied');
        return verdict;
      }
      const pct = typeof result.dmarc.pct === 'number' ? result.dmarc.pct : 100;
      if (pct < 100 && random() * 100 >= pct) {
        log.info({ id: ctx.id, client: ip, domain: fromDomain, pct }, 'DMARC p=reject not applied to this message (pct sampling)');
        return verdict;
      }
      return {
        action: 'reject',
        reply: { code: 550, enhanced: '5.7.1', text: `Message rejected by DMARC policy of ${fromDomain ?? org}` },
        headers,
        tags,
      };
    },
  };
}
