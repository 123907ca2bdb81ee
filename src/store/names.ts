/**
 * Names on disk: owners → directories, IMAP folder names ↔ Maildir++ directories, and message file names.
 * Everything here is pure (no I/O) so that the IMAP server can use it without a store object.
 */
import { loginKey } from '../directory/types.js';
import type { MailboxOwner } from './types.js';
import { decodeMutf7, encodeMutf7 } from './mutf7.js';

/** The hierarchy separator of the API (and of IMAP LIST); Maildir++ uses '.' on disk. */
export const FOLDER_SEPARATOR = '/';

/** The folders delivery and IMAP create, with the names Dovecot's default config gives them (DESIGN.md §3). */
export const SPECIAL_FOLDERS = { junk: 'Junk', trash: 'Trash', sent: 'Sent', drafts: 'Drafts' } as const;

/** RFC 6154 special-use attributes. */
export type SpecialUse = '\\Junk' | '\\Trash' | '\\Sent' | '\\Drafts' | '\\Archive';

// Top-level names only, compared case-insensitively: the names Dovecot's example config and the big clients
// (Outlook, Apple Mail, Thunderbird) use for the same roles.
const SPECIAL_USE_BY_NAME: ReadonlyMap<string, SpecialUse> = new Map([
  ['junk', '\\Junk'],
  ['spam', '\\Junk'],
  ['junk e-mail', '\\Junk'],
  ['trash', '\\Trash'],
  ['deleted items', '\\Trash'],
  ['deleted messages', '\\Trash'],
  ['sent', '\\Sent'],
  ['sent items', '\\Sent'],
  ['sent messages', '\\Sent'],
  ['drafts', '\\Drafts'],
  ['archive', '\\Archive'],
]);

export function specialUseOf(folder: string): SpecialUse | undefined {
  return SPECIAL_USE_BY_NAME.get(folder.toLowerCase());
}

export class InvalidFolderName extends Error {
  constructor(readonly folder: string, reason: string) {
    super(`invalid folder name ${JSON.stringify(folder)}: ${reason}`);
    this.name = 'InvalidFolderName';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Owners

/**
 * One path component for a login or group name: lower-cased (AD names are case-insensitive, `loginKey`), then
 * '%', '/', '\', control characters and a leading '.' percent-encoded. Encoding '%' itself keeps the mapping
 * one-to-one, and with no '/' and no leading '.' the result can never be '', '.', '..' or reach outside its parent.
 */
export function ownerDirName(name: string): string {
  const key = loginKey(name);
  if (key === '') throw new RangeError('empty mailbox owner name');
  let out = '';
  for (const ch of key) {
    const code = ch.codePointAt(0)!;
    const unsafe = ch === '%' || ch === '/' || ch === '\\' || code < 0x20 || code === 0x7f || (out === '' && ch === '.');
    out += unsafe ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : ch;
  }
  // NAME_MAX is 255 bytes on every Linux file system we care about; refuse rather than fail later with ENAMETOOLONG.
  if (Buffer.byteLength(out) > 255) throw new RangeError('mailbox owner name too long');
  return out;
}

/** `users/<login>/Maildir` or `shared/<group>/Maildir`, relative to the store root. */
export function ownerRelativePath(owner: MailboxOwner): string {
  return owner.kind === 'user' ? `users/${ownerDirName(owner.login)}/Maildir` : `shared/${ownerDirName(owner.group)}/Maildir`;
}

export function ownerLabel(owner: MailboxOwner): string {
  return owner.kind === 'user' ? owner.login : `shared:${owner.group}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Folders

/**
 * IMAP folder name → Maildir++ directory name ('' for INBOX, the Maildir root).
 *
 * 'Archive/2024' → '.Archive.2024'. Each level is stored as Dovecot stores it: modified UTF-7 ("Entwürfe" →
 * 'Entw&APw-rfe'), and the characters Maildir++ cannot hold escaped the way Dovecot's listescape plugin does
 * (`\` + two hex digits): '.' → `\2e`, '\' → `\5c`, a leading '~' → `\7e`. Plain Dovecot refuses '.' in names with
 * the Maildir++ layout; pointed at this store it needs `mail_plugins = listescape` to show such folders by the same
 * name (without it they appear as 'v1\2e2'). 'INBOX' is case-insensitive (RFC 3501 §5.1), also as a parent.
 */
export function folderDirName(folder: string): string {
  const parts = folder.split(FOLDER_SEPARATOR);
  if (parts[0]!.toUpperCase() === 'INBOX') {
    if (parts.length === 1) return '';
    parts[0] = 'INBOX';
  }
  const encoded = parts.map((part) => {
    if (part === '') throw new InvalidFolderName(folder, 'empty hierarchy level');
    if (/[\u0000-\u001f\u007f]/.test(part)) throw new InvalidFolderName(folder, 'control character');
    let out = encodeMutf7(part).replace(/[.\\]/g, (c) => (c === '.' ? '\\2e' : '\\5c'));
    if (out.startsWith('~')) out = `\\7e${out.slice(1)}`;
    return out;
  });
  const dir = `.${encoded.join('.')}`;
  if (Buffer.byteLength(dir) > 255) throw new InvalidFolderName(folder, 'too long');
  return dir;
}

/** Maildir++ directory name ('.Archive.2024', or '' for the root) → IMAP folder name; undefined when it is not one. */
export function folderFromDirName(dir: string): string | undefined {
  if (dir === '') return 'INBOX';
  if (!dir.startsWith('.') || dir === '.' || dir === '..') return undefined;
  const parts = dir.slice(1).split('.');
  try {
    return parts
      .map((part) => {
        if (part === '') throw new SyntaxError('empty level');
        return decodeMutf7(part.replace(/\\([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))));
      })
      .join(FOLDER_SEPARATOR);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Message files

/**
 * The host part of a Maildir file name. Dovecot (and Python's mailbox module) write '/' as `\057` and ':' as `\072`
 * so that the name stays one path component and ':' still starts the info part.
 */
export function maildirHostname(hostname: string): string {
  return hostname.replace(/\//g, '\\057').replace(/:/g, '\\072');
}

/**
 * Maildir flags as stored after ':2,': letters only (uppercase = standard flags D F P R S T, lowercase = Dovecot
 * keywords a..z), each once, in ASCII order as the Maildir spec requires.
 */
export function normalizeFlags(flags: string): string {
  if (!/^[A-Za-z]*$/.test(flags)) throw new RangeError(`invalid Maildir flags ${JSON.stringify(flags)}`);
  return [...new Set(flags)].sort().join('');
}

export interface MaildirFileName {
  /** The unique part before ',' and ':' (what Dovecot's uidlist keys on). */
  base: string;
  /** From ',S=': the file's size in bytes. */
  size?: number;
  /** From ',W=': the size with CRLF line ends (Dovecot); our files already have CRLF, so we do not write it. */
  virtualSize?: number;
  /** Flags after ':2,' ('' when none or when the name has no info part). */
  flags: string;
}

export function parseMaildirFileName(name: string): MaildirFileName {
  const colon = name.indexOf(':');
  const head = colon < 0 ? name : name.slice(0, colon);
  const info = colon < 0 ? '' : name.slice(colon + 1);
  const comma = head.indexOf(',');
  const base = comma < 0 ? head : head.slice(0, comma);
  const result: MaildirFileName = { base, flags: info.startsWith('2,') ? info.slice(2) : '' };
  if (comma >= 0) {
    for (const field of head.slice(comma + 1).split(',')) {
      const m = /^([SW])=(\d+)$/.exec(field);
      if (m?.[1] === 'S') result.size = Number(m[2]);
      if (m?.[1] === 'W') result.virtualSize = Number(m[2]);
    }
  }
  return result;
}
