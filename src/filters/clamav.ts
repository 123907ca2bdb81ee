/**
 * Antivirus stage (seed: Email > Filter > Antivirus; DESIGN.md §3): the whole message goes to clamd with INSTREAM,
 * over its Unix socket or TCP, so clamd needs no access to our files; clamd unpacks MIME parts and archives itself.
 *
 * Infected → reject with 554 5.7.1 or discard, as filter.antivirus.action says. Allow lists do not skip it (seed:
 * "Antivirus checks are enforced despite whitelist settings"). A clamd that cannot answer — unreachable, too slow, an
 * ERROR reply, or a reply we do not understand — makes the stage THROW; the pipeline turns that into 451 4.7.1 or an
 * unscanned accept per filter.antivirus.onFailure. Never a silent pass.
 *
 * The INSTREAM exchange is done by the `clamscan` package (NodeClam.scanStream). It is used with these guards:
 * - it is initialised without looking for local clamscan/clamdscan binaries (path null, clamscan inactive, no local
 *   fallback) and without its start-up PING (bypassTest), so postern starts while clamd is down;
 * - its timeout is an idle timeout after which it only half-closes the socket: a clamd that hangs would leave the
 *   promise pending for ever, so the scan races our own deadline (config timeoutMs);
 * - a reply it cannot classify (an empty one when clamd dies mid-scan, "COMMAND READ TIMED OUT") resolves with
 *   isInfected null instead of failing: we treat anything but true/false as a failure.
 */
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { ClamavConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { SettingKey, SettingValue } from '../settings/index.js';
import { ACCEPT, type FilterContext, type FilterStage, type FilterVerdict } from './types.js';

/** Where Debian's clamav-daemon listens (its clamd.conf LocalSocket). */
export const DEFAULT_CLAMD_SOCKET = '/run/clamav/clamd.ctl';
/** clamd's default TCPSocket. */
export const DEFAULT_CLAMD_PORT = 3310;
/** INSTREAM chunk size; clamd accepts any size up to StreamMaxLength in total. */
const CHUNK = 64 * 1024;

/** What the stages need from the settings store (src/settings: Settings satisfies it). */
export interface SettingsReader {
  get<K extends SettingKey>(key: K): SettingValue<K>;
}

export interface ScanResult {
  infected: boolean;
  /** Signature names clamd reported, e.g. ['Eicar-Test-Signature']. */
  viruses: string[];
}

export class ClamdError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClamdError';
  }
}

/** The part of clamscan's NodeClam used here (the package ships no types). */
interface NodeClamInstance {
  init(options: Record<string, unknown>): Promise<NodeClamInstance>;
  scanStream(stream: Readable): Promise<{ isInfected: boolean | null; viruses: string[]; resultString?: string }>;
}
const NodeClam = createRequire(import.meta.url)('clamscan') as new () => NodeClamInstance;

/** Where to reach clamd: the socket when set, else host/port with the defaults filled in. */
export function clamdAddress(config: Pick<ClamavConfig, 'socket' | 'host' | 'port'>): { socket: string } | { host: string; port: number } {
  if (config.socket) return { socket: config.socket };
  if (config.host === undefined && config.port === undefined) return { socket: DEFAULT_CLAMD_SOCKET };
  return { host: config.host ?? '127.0.0.1', port: config.port ?? DEFAULT_CLAMD_PORT };
}

function describeAddress(a: ReturnType<typeof clamdAddress>): string {
  return 'socket' in a ? a.socket : `${a.host}:${a.port}`;
}

/** Scans buffers with clamd. One instance per configuration; scans may run concurrently. */
export class ClamdScanner {
  readonly address: ReturnType<typeof clamdAddress>;
  private readonly timeoutMs: number;
  private clam: Promise<NodeClamInstance> | undefined;

  constructor(config: ClamavConfig) {
    this.address = clamdAddress(config);
    this.timeoutMs = config.timeoutMs;
  }

  private client(): Promise<NodeClamInstance> {
    // init() does no I/O with these options (no binary probe, no PING), so it cannot fail because clamd is down.
    this.clam ??= new NodeClam()
      .init({
        preference: 'clamdscan',
        clamscan: { active: false, path: null },
        clamdscan: {
          ...('socket' in this.address ? { socket: this.address.socket } : { host: this.address.host, port: this.address.port }),
          timeout: this.timeoutMs,
          path: null,
          localFallback: false,
          bypassTest: true,
          multiscan: false,
        },
      })
      .catch((err: unknown) => {
        this.clam = undefined;
        throw err;
      });
    return this.clam;
  }

  /** Throws ClamdError when clamd cannot give a clear answer in time. */
  async scan(message: Buffer): Promise<ScanResult> {
    const where = describeAddress(this.address);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ClamdError(`clamd ${where}: no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const clam = await Promise.race([this.client(), deadline]);
      const stream = Readable.from(chunks(message), { objectMode: false });
      const result = await Promise.race([clam.scanStream(stream), deadline]);
      if (result.isInfected === true) {
        const viruses = result.viruses.map(cleanName).filter(Boolean);
        return { infected: true, viruses: viruses.length ? viruses : ['unknown'] };
      }
      if (result.isInfected === false) return { infected: false, viruses: [] };
      throw new ClamdError(`clamd ${where}: unclear reply "${(result.resultString ?? '').slice(0, 200)}"`);
    } catch (err) {
      if (err instanceof ClamdError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new ClamdError(`clamd ${where}: ${e.code ?? e.message ?? String(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
}

function* chunks(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += CHUNK) yield buf.subarray(i, i + CHUNK);
  if (buf.length === 0) yield Buffer.alloc(0);
}

/** A signature name fit for an SMTP reply and a log line: printable ASCII, bounded. */
function cleanName(name: string): string {
  return name.replace(/[^\x21-\x7e]+/g, ' ').trim().slice(0, 120);
}

export interface ClamavStageOptions {
  config: ClamavConfig;
  settings: SettingsReader;
  log: Logger;
  /** For tests: a scanner to use instead of one built from `config`. */
  scanner?: Pick<ClamdScanner, 'scan'>;
}

export function clamavStage(opts: ClamavStageOptions): FilterStage {
  const scanner = opts.scanner ?? new ClamdScanner(opts.config);
  const log = opts.log.child({ component: 'filter', stage: 'clamav' });
  return {
    name: 'clamav',
    phase: 'data',
    async check(ctx: FilterContext): Promise<FilterVerdict> {
      if (!opts.settings.get('filter.antivirus')) return ACCEPT;
      if (!ctx.message) return ACCEPT; // only the data phase has a message; this stage runs there
      const t0 = Date.now();
      const result = await scanner.scan(ctx.message); // throws → pipeline applies filter.antivirus.onFailure
      const ms = Date.now() - t0;
      if (!result.infected) {
        log.debug({ id: ctx.id, ms, size: ctx.message.length }, 'clean');
        return ACCEPT;
      }
      const virus = result.viruses[0];
      const action = opts.settings.get('filter.antivirus.action');
      log.warn(
        { id: ctx.id, client: ctx.client.address, from: ctx.from, virus, viruses: result.viruses, action, ms },
        `virus found: ${virus}`,
      );
      if (action === 'discard') return { action: 'discard', tags: { virus } };
      return {
        action: 'reject',
        reply: { code: 554, enhanced: '5.7.1', text: `Message refused: virus found (${virus})` },
        tags: { virus },
      };
    },
  };
}
