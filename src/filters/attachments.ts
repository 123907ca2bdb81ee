/**
 * The attachment filter (seed, Email > Filter: "The system recognizes file types by looking at their contents,
 * regardless of the file attachment name"): a data-phase stage that refuses a message carrying a file of a blocked
 * class, with `554 5.7.1 Message refused: attachment of blocked type (<class>: <type>)` and the tag
 * `blockedAttachment: { class, type, filename?, path? }`.
 *
 * What is looked at: every leaf part of the MIME tree, text bodies included, decoded from base64 or
 * quoted-printable; embedded messages (message/rfc822, message/global) are parsed in turn. The type comes from the
 * content only (file-type's magic numbers), never from the file name or the declared Content-Type.
 *
 * Classes (file-type's `ext` names; `msi` is ours, see isMsi):
 * - executables: exe (every PE: exe, dll, scr, sys…), elf, macho, msi/msp (an OLE2 file whose root is an installer
 *   database), class, jar, apk, deb, rpm, crx, xpi, lnk (shortcuts run commands), chm (compiled help runs scripts).
 *   Scripts (.js, .vbs, .ps1, .bat, .hta) have no magic number, so they cannot be recognised by content: they are
 *   the antivirus' job. Office documents with macros are documents, also the antivirus' job.
 * - archives: zip, rar, 7z, gz, tar.gz, bz2, xz, tar, cab, iso, dmg, lzh, arj, ace, cpio, ar, Z, lz, lz4, zst, asar.
 *   Office documents — docx/xlsx/pptx (and their macro and template forms), vsdx, odt/ods/odp/odg (and templates),
 *   epub, Apple's pages/numbers/key — are zip containers that file-type names by their content; they count as
 *   archives only with `filter.attachments.officeAsArchive` (the seed warns they may be blocked otherwise).
 * - custom: `filter.attachments.custom`, a list of file-type `ext` names (a `gz` entry also matches `tar.gz`).
 *   OLE2 files other than installers (doc, xls, msg…) are `cfb`.
 * A type matching several classes is reported with the first of executables, archives, custom.
 *
 * Looking inside: zip containers (zip, the office formats, jar, apk, xpi), gzip and tar are opened and every
 * entry is checked in the same way, recursively, so an executable in a zip in a zip, or a zip disguised as a docx
 * (only `[Content_Types].xml` makes a zip a docx), is found. A blocked class is blocked at any depth. Other archive
 * formats (7z, rar, bz2, xz, cab, iso…) cannot be opened without external tools; neither can encrypted zip
 * entries: they are opaque, blocked only as archives, and listed in the tag `attachmentsUnchecked` otherwise (the
 * seed's Amavis let such "undecipherable" content pass in the same way).
 *
 * Bounds (AttachmentLimits), so that no archive takes the server down: nesting depth, entries, the uncompressed
 * size the archives of one message declare (counted before anything is inflated), the compression ratio of an entry
 * (a zip bomb's zeros compress about 1000:1; real data rarely beyond 100:1), and the bytes actually inflated (gzip
 * has no trustworthy size field; a zip entry larger than it declares is an error, yauzl checks). Only the first
 * `headBytes` of an entry are inflated to find its type, except for containers, which are inflated whole. An
 * archive that exceeds a bound, or is damaged, cannot be vouched for: the message is refused ("archive too large to
 * inspect") when executables or custom types are blocked, since those are what an archive would hide; when only
 * archives are blocked, the archives themselves are refused before any of this, and what remains (an office
 * document too large to look into) is accepted with the tag `attachmentsUnchecked`.
 *
 * With no class enabled the stage accepts at once, without parsing the message.
 */
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { fileTypeFromBuffer } from 'file-type';
import yauzl from 'yauzl';
import type { SettingsReader } from './lists.js';
import { decodeLeaf, mimeLeaves, MimeStructureError, type MimeLeaf } from './mime.js';
import { ACCEPT, type FilterStage, type FilterVerdict } from './types.js';

export type AttachmentClass = 'executables' | 'archives' | 'custom';

export const EXECUTABLE_TYPES: ReadonlySet<string> = new Set([
  'exe', 'elf', 'macho', 'msi', 'class', 'jar', 'apk', 'deb', 'rpm', 'crx', 'xpi', 'lnk', 'chm',
]);
export const ARCHIVE_TYPES: ReadonlySet<string> = new Set([
  'zip', 'rar', '7z', 'gz', 'tar.gz', 'bz2', 'xz', 'tar', 'cab', 'iso', 'dmg', 'lzh', 'arj', 'ace', 'cpio', 'ar', 'z',
  'lz', 'lz4', 'zst', 'asar',
]);
export const OFFICE_TYPES: ReadonlySet<string> = new Set([
  'docx', 'docm', 'dotx', 'dotm', 'xlsx', 'xlsm', 'xltx', 'xltm', 'pptx', 'pptm', 'potx', 'potm', 'ppsx', 'ppsm',
  'vsdx', 'odt', 'ods', 'odp', 'odg', 'ott', 'ots', 'otp', 'otg', 'epub', 'pages', 'numbers', 'key',
]);
/** Zip containers we open: plain zip, the office formats, and the zip-based executables (for custom types). */
const ZIP_CONTAINERS: ReadonlySet<string> = new Set(['zip', 'jar', 'apk', 'xpi', ...OFFICE_TYPES]);
const GZIP_TYPES: ReadonlySet<string> = new Set(['gz', 'tar.gz']);

export interface AttachmentPolicy {
  executables: boolean;
  archives: boolean;
  officeAsArchive: boolean;
  /** file-type `ext` names, lower case. */
  custom: readonly string[];
}

export interface AttachmentLimits {
  /** Archive nesting: entries of an attached zip are at depth 1; a container at this depth is not opened. */
  maxDepth: number;
  /** Uncompressed bytes the archives of one message may declare (and gzip may inflate to), all together. */
  maxUncompressedBytes: number;
  /** Archive entries in one message, all archives together. */
  maxEntries: number;
  /** Largest uncompressed:compressed ratio of an entry larger than ratioMinBytes. */
  maxRatio: number;
  ratioMinBytes: number;
  /** Bytes of an entry inflated to find its type (ISO 9660 needs 32 KB + 6). */
  headBytes: number;
  /** Embedded messages within embedded messages. */
  maxMessageDepth: number;
  /** MIME parts in one message (mailsplit counts every node, embedded messages apart). */
  maxParts: number;
}

export const DEFAULT_ATTACHMENT_LIMITS: AttachmentLimits = {
  maxDepth: 3,
  // Twice what a 20 MB message (queue.maxMessageSizeMB's default) of ordinary documents expands to, rounded up:
  // a legitimate archive of logs compresses 5-10:1. Nothing this large is held in memory unless it is a container.
  maxUncompressedBytes: 100 * 1024 * 1024,
  maxEntries: 10_000,
  maxRatio: 200,
  ratioMinBytes: 1024 * 1024,
  headBytes: 64 * 1024,
  maxMessageDepth: 5,
  maxParts: 1000,
};

export type UninspectableReason = 'too-large' | 'too-deep' | 'damaged' | 'structure';

const REASON_TEXT: Record<UninspectableReason, string> = {
  'too-large': 'archive too large to inspect',
  'too-deep': 'archive nested too deep to inspect',
  damaged: 'damaged archive cannot be inspected',
  structure: 'message structure too complex to inspect',
};

export interface BlockedAttachment {
  class: AttachmentClass | 'uninspectable';
  /** The detected type (file-type `ext`), or for uninspectable content the type of the container. */
  type: string;
  /** The attachment's file name as the sender gave it (for the log: it decided nothing). */
  filename?: string;
  /** Where the blocked file is, when inside archives or embedded messages: "a.zip > b.zip > setup.exe". */
  path?: string;
  reason?: UninspectableReason;
}

export interface AttachmentInspection {
  blocked: BlockedAttachment | null;
  /** Content that could not be looked into and was let through: "docs.7z (7z)", "a.zip > b.bin (encrypted)". */
  unchecked: string[];
}

/** The type of `data` by its content: file-type's `ext`, or `msi` for an installer, or null. */
export async function detectType(data: Uint8Array): Promise<string | null> {
  if (data.length === 0) return null;
  let t: { ext: string } | undefined;
  try {
    t = await fileTypeFromBuffer(data);
  } catch {
    // A detector tripped over malformed data. Neither a pass nor a retry-forever 451: fall back to the magic
    // numbers that matter most here.
    t = fallbackType(data);
  }
  if (!t) return null;
  if (t.ext === 'cfb' && isMsi(data)) return 'msi';
  return t.ext.toLowerCase();
}

function fallbackType(data: Uint8Array): { ext: string } | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, 8));
  if (b[0] === 0x4d && b[1] === 0x5a) return { ext: 'exe' };
  if (b.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return { ext: 'elf' };
  if (b.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04]))) return { ext: 'zip' };
  if (b.subarray(0, 8).equals(Buffer.from('d0cf11e0a1b11ae1', 'hex'))) return { ext: 'cfb' };
  return undefined;
}

// Root storage CLSIDs of Windows Installer packages and patches ({000C1084-…-46}, {000C1086-…-46}) as stored,
// little-endian. A merge module (msm) uses the package CLSID.
const INSTALLER_CLSIDS = new Set(['84100c0000000000c000000000000046', '86100c0000000000c000000000000046']);

/** MS-CFB §2.2 (header) and §2.6 (directory entry): the root entry's CLSID says what the compound file is. */
export function isMsi(data: Uint8Array): boolean {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 512) return false;
  const shift = b.readUInt16LE(0x1e);
  if (shift !== 9 && shift !== 12) return false;
  const sectorSize = 1 << shift;
  const firstDirSector = b.readUInt32LE(0x30);
  // The header occupies sector -1, so sector n starts at (n + 1) * sectorSize; the root is the first entry.
  const at = (firstDirSector + 1) * sectorSize + 0x50;
  if (firstDirSector >= 0xfffffffa || at + 16 > b.length) return false;
  return INSTALLER_CLSIDS.has(b.toString('hex', at, at + 16));
}

/** The class `type` belongs to under `policy`, or null when it is allowed. */
export function classify(type: string | null, policy: AttachmentPolicy): AttachmentClass | null {
  if (!type) return null;
  const t = type.toLowerCase();
  if (policy.executables && EXECUTABLE_TYPES.has(t)) return 'executables';
  if (policy.archives && (ARCHIVE_TYPES.has(t) || (policy.officeAsArchive && OFFICE_TYPES.has(t)))) return 'archives';
  if (policy.custom.length) {
    const last = t.includes('.') ? t.slice(t.lastIndexOf('.') + 1) : t;
    if (policy.custom.includes(t) || policy.custom.includes(last)) return 'custom';
  }
  return null;
}

export function policyEnabled(policy: AttachmentPolicy): boolean {
  return policy.executables || policy.archives || policy.custom.length > 0;
}

class Uninspectable extends Error {
  constructor(
    readonly reason: UninspectableReason,
    readonly type: string,
    readonly path: string[],
  ) {
    super(`${REASON_TEXT[reason]} (${type}) at ${path.join(' > ')}`);
    this.name = 'Uninspectable';
  }
}

/** Something to look at: a MIME part (all in memory) or an archive entry (inflated on demand). */
interface Item {
  /** At least the first headBytes (all of it when `complete`). */
  head(): Promise<Buffer>;
  /** All of it; may throw Uninspectable. */
  full(): Promise<Buffer>;
  complete: boolean;
}

class Inspector {
  private bytes = 0;
  private entries = 0;
  readonly unchecked: string[] = [];

  constructor(
    readonly policy: AttachmentPolicy,
    readonly limits: AttachmentLimits,
  ) {}

  /** Executables and custom types can hide in a container; archives too, inside a document. */
  private get looksInside(): boolean {
    return policyEnabled(this.policy);
  }

  private get refusesUninspectable(): boolean {
    return this.policy.executables || this.policy.custom.length > 0;
  }

  async message(message: Buffer, path: string[], messageDepth: number): Promise<BlockedAttachment | null> {
    let leaves: MimeLeaf[];
    try {
      leaves = await mimeLeaves(message, { maxParts: this.limits.maxParts });
    } catch (err) {
      if (err instanceof MimeStructureError) return this.cannotInspect(new Uninspectable('structure', 'message', path));
      throw err;
    }
    let n = 0;
    for (const leaf of leaves) {
      n++;
      const data = decodeLeaf(leaf);
      if (data.length === 0) continue;
      const name = leaf.filename || `part ${n}`;
      const here = [...path, name];
      if (leaf.contentType === 'message/rfc822' || leaf.contentType === 'message/global') {
        if (messageDepth >= this.limits.maxMessageDepth) {
          const blocked = this.cannotInspect(new Uninspectable('structure', 'message', here));
          if (blocked) return blocked;
          continue;
        }
        const found = await this.message(data, here, messageDepth + 1);
        if (found) return found;
        continue;
      }
      let found: BlockedAttachment | null;
      try {
        found = await this.item({ head: async () => data, full: async () => data, complete: true }, here, 0);
      } catch (err) {
        if (!(err instanceof Uninspectable)) throw err;
        found = this.cannotInspect(err);
      }
      if (found) {
        if (leaf.filename && !found.filename) found.filename = leaf.filename;
        return found;
      }
    }
    return null;
  }

  private cannotInspect(err: Uninspectable): BlockedAttachment | null {
    if (!this.refusesUninspectable) {
      this.unchecked.push(`${err.path.join(' > ')} (${err.type}: ${REASON_TEXT[err.reason]})`);
      return null;
    }
    const b: BlockedAttachment = { class: 'uninspectable', type: err.type, reason: err.reason };
    if (err.path.length) b.path = err.path.join(' > ');
    return b;
  }

  /** Detects `item`'s type, checks it against the policy, and looks inside containers. */
  private async item(item: Item, path: string[], depth: number): Promise<BlockedAttachment | null> {
    let data = await item.head();
    let type = await detectType(data);
    const container = type !== null && (ZIP_CONTAINERS.has(type) || GZIP_TYPES.has(type) || type === 'tar');
    // The head of a zip may not show what it is (a jar, an apk), nor that of an OLE2 file whether it installs.
    if (!item.complete && (container || type === 'cfb')) {
      data = await item.full();
      type = await detectType(data);
    }
    const cls = classify(type, this.policy);
    if (cls) return this.found(cls, type!, path);
    if (type === null || !this.looksInside) return null;
    if (!(ZIP_CONTAINERS.has(type) || GZIP_TYPES.has(type) || type === 'tar')) {
      if (ARCHIVE_TYPES.has(type)) this.unchecked.push(`${path.join(' > ')} (${type})`);
      return null;
    }
    if (depth >= this.limits.maxDepth) throw new Uninspectable('too-deep', type, path);
    if (ZIP_CONTAINERS.has(type)) return this.zip(data, type, path, depth);
    if (GZIP_TYPES.has(type)) return this.gzip(data, type, path, depth);
    return this.tar(data, path, depth);
  }

  private found(cls: AttachmentClass, type: string, path: string[]): BlockedAttachment {
    const b: BlockedAttachment = { class: cls, type };
    if (path.length > 1) b.path = path.join(' > ');
    return b;
  }

  private countEntries(n: number, type: string, path: string[]): void {
    this.entries += n;
    if (this.entries > this.limits.maxEntries) throw new Uninspectable('too-large', type, path);
  }

  private charge(bytes: number, type: string, path: string[]): void {
    this.bytes += bytes;
    if (this.bytes > this.limits.maxUncompressedBytes) throw new Uninspectable('too-large', type, path);
  }

  private remaining(): number {
    return Math.max(0, this.limits.maxUncompressedBytes - this.bytes);
  }

  private async zip(data: Buffer, type: string, path: string[], depth: number): Promise<BlockedAttachment | null> {
    let zip: yauzl.ZipFile;
    try {
      zip = await yauzl.fromBufferPromise(data, { lazyEntries: true, autoClose: false, strictFileNames: false, validateEntrySizes: true });
    } catch {
      throw new Uninspectable('damaged', type, path);
    }
    try {
      this.countEntries(zip.entryCount, type, path);
      for await (const entry of zip.eachEntry()) {
        if (entry.fileName.endsWith('/')) continue; // a directory
        const here = [...path, entry.fileName];
        const declared = entry.uncompressedSize;
        if (
          declared >= this.limits.ratioMinBytes &&
          declared > Math.max(entry.compressedSize, 1) * this.limits.maxRatio
        ) {
          throw new Uninspectable('too-large', type, path);
        }
        this.charge(declared, type, path);
        if ((entry.generalPurposeBitFlag & 0x1) !== 0 || (entry.compressionMethod !== 0 && entry.compressionMethod !== 8)) {
          this.unchecked.push(`${here.join(' > ')} (${(entry.generalPurposeBitFlag & 0x1) !== 0 ? 'encrypted' : `compression method ${entry.compressionMethod}`})`);
          continue;
        }
        const read = async (limit: number): Promise<Buffer> => {
          try {
            return (await collect(await zip.openReadStreamPromise(entry), limit)).data;
          } catch {
            throw new Uninspectable('damaged', type, path);
          }
        };
        const headLimit = this.limits.headBytes;
        const found = await this.item(
          { head: () => read(declared <= headLimit ? Infinity : headLimit), full: () => read(Infinity), complete: declared <= headLimit },
          here,
          depth + 1,
        );
        if (found) return found;
      }
    } catch (err) {
      if (err instanceof Uninspectable) throw err;
      throw new Uninspectable('damaged', type, path);
    } finally {
      zip.close();
    }
    return null;
  }

  private async gzip(data: Buffer, type: string, path: string[], depth: number): Promise<BlockedAttachment | null> {
    const inner = path[path.length - 1].replace(/\.(t?gz|gzip)$/i, (m) => (m.toLowerCase() === '.tgz' ? '.tar' : ''));
    const here = [...path, inner === path[path.length - 1] ? `${inner} (gunzipped)` : inner];
    this.countEntries(1, type, path);
    const inflate = async (limit: number, lenient: boolean) => {
      const gunzip = createGunzip();
      const done = collect(gunzip, limit, lenient);
      gunzip.end(data);
      return done;
    };
    let full: Buffer | null = null;
    return this.item(
      {
        head: async () => {
          try {
            return (await inflate(this.limits.headBytes, true)).data;
          } catch {
            throw new Uninspectable('damaged', type, path);
          }
        },
        full: async () => {
          if (full) return full;
          // gzip's size field is the size modulo 2^32 and can lie: the bound is on the bytes inflated.
          const byRatio = Math.max(this.limits.ratioMinBytes, data.length * this.limits.maxRatio);
          const limit = Math.min(this.remaining(), byRatio);
          let r: { data: Buffer; truncated: boolean };
          try {
            r = await inflate(limit, false);
          } catch {
            throw new Uninspectable('damaged', type, path);
          }
          if (r.truncated) throw new Uninspectable('too-large', type, path);
          this.charge(r.data.length, type, path);
          full = r.data;
          return full;
        },
        complete: false,
      },
      here,
      depth + 1,
    );
  }

  /** POSIX ustar / GNU tar: 512-byte headers, each followed by its data padded to 512 bytes. */
  private async tar(data: Buffer, path: string[], depth: number): Promise<BlockedAttachment | null> {
    let pos = 0;
    let longName: string | null = null;
    while (pos + 512 <= data.length) {
      const h = data.subarray(pos, pos + 512);
      if (h.every((b) => b === 0)) break; // end of archive
      const size = tarNumber(h.subarray(124, 136));
      if (size === null) throw new Uninspectable('damaged', 'tar', path);
      const flag = String.fromCharCode(h[156] || 0x30);
      const start = pos + 512;
      const end = start + size;
      if (end > data.length) throw new Uninspectable('damaged', 'tar', path);
      pos = start + Math.ceil(size / 512) * 512;
      if (flag === 'L') {
        longName = cString(data.subarray(start, end));
        continue;
      }
      if (flag !== '0' && flag !== '7') {
        // Directories, links, devices, pax headers ('x', 'g'): no content of their own.
        if (flag !== 'x' && flag !== 'g') longName = null;
        continue;
      }
      this.countEntries(1, 'tar', path);
      const prefix = cString(h.subarray(345, 500));
      const name = longName ?? (prefix ? `${prefix}/${cString(h.subarray(0, 100))}` : cString(h.subarray(0, 100)));
      longName = null;
      if (size === 0) continue;
      const body = data.subarray(start, end);
      const found = await this.item({ head: async () => body, full: async () => body, complete: true }, [...path, name], depth + 1);
      if (found) return found;
    }
    return null;
  }
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

/** A tar number field: octal text, or base-256 when the high bit of the first byte is set (GNU). */
function tarNumber(field: Buffer): number | null {
  if (field[0] & 0x80) {
    let n = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return Number.isSafeInteger(n) ? n : null;
  }
  const text = cString(field).trim();
  if (text === '') return 0;
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : null;
}

/**
 * Reads `stream` up to `limit` bytes, then stops it. `truncated` says more was there. With `lenient`, an error
 * after some data (a truncated gzip) returns what was read.
 */
function collect(stream: Readable, limit: number, lenient = false): Promise<{ data: Buffer; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let settled = false;
    const finish = (truncated: boolean) => {
      if (settled) return;
      settled = true;
      resolve({ data: Buffer.concat(chunks, n), truncated });
    };
    stream.on('data', (chunk: Buffer) => {
      if (settled) return;
      if (n + chunk.length > limit) {
        const room = limit - n;
        if (room > 0) chunks.push(chunk.subarray(0, room));
        n += Math.max(room, 0);
        finish(true);
        stream.destroy();
        return;
      }
      chunks.push(chunk);
      n += chunk.length;
    });
    stream.once('end', () => finish(false));
    stream.on('error', (err) => {
      if (settled) return;
      if (lenient && n > 0) return finish(false);
      settled = true;
      reject(err);
    });
  });
}

/** Looks at every part of `message` under `policy`; the first blocked file found, and what could not be checked. */
export async function inspectAttachments(
  message: Buffer,
  policy: AttachmentPolicy,
  limits: Partial<AttachmentLimits> = {},
): Promise<AttachmentInspection> {
  const inspector = new Inspector(policy, { ...DEFAULT_ATTACHMENT_LIMITS, ...limits });
  const blocked = await inspector.message(message, [], 0);
  return { blocked, unchecked: inspector.unchecked };
}

export function blockedReply(b: BlockedAttachment): NonNullable<FilterVerdict['reply']> {
  const text =
    b.class === 'uninspectable'
      ? `Message refused: ${REASON_TEXT[b.reason ?? 'too-large']} (${b.type})`
      : `Message refused: attachment of blocked type (${b.class}: ${b.type})`;
  return { code: 554, enhanced: '5.7.1', text };
}

export interface AttachmentStageDeps {
  settings: SettingsReader;
  limits?: Partial<AttachmentLimits>;
}

export function readAttachmentPolicy(settings: SettingsReader): AttachmentPolicy {
  return {
    executables: settings.get('filter.attachments.executables'),
    archives: settings.get('filter.attachments.archives'),
    officeAsArchive: settings.get('filter.attachments.officeAsArchive'),
    custom: settings.get('filter.attachments.custom').map((e) => e.toLowerCase()),
  };
}

export function attachments({ settings, limits }: AttachmentStageDeps): FilterStage {
  return {
    name: 'attachments',
    phase: 'data',
    async check(ctx): Promise<FilterVerdict> {
      const policy = readAttachmentPolicy(settings);
      if (!policyEnabled(policy)) return ACCEPT;
      if (!ctx.message) throw new Error('attachments: no message in the data phase');
      const { blocked, unchecked } = await inspectAttachments(ctx.message, policy, limits);
      const tags: Record<string, unknown> = {};
      if (unchecked.length) tags.attachmentsUnchecked = unchecked;
      if (!blocked) return Object.keys(tags).length ? { action: 'accept', tags } : ACCEPT;
      tags.blockedAttachment = blocked;
      return { action: 'reject', reply: blockedReply(blocked), tags };
    },
  };
}
