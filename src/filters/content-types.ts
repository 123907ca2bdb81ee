/**
 * The types the attachment filter can recognise by content (src/filters/attachments.ts detectType): file-type's
 * magic numbers, plus `msi` (an OLE2 file whose root is an installer database). Anything else — scripts such as
 * bat, cmd, js, vbs, ps1, hta, which are plain text with no magic number, or names like iso and img that
 * file-type does not detect — can never be found by content, so `filter.attachments.custom` refuses it.
 */
import { supportedExtensions } from 'file-type';

export const DETECTABLE_TYPES: ReadonlySet<string> = new Set([...[...supportedExtensions].map((e) => String(e).toLowerCase()), 'msi']);

/** Plain-text formats people expect to block; named in the refusal so the admin knows why. */
export const PLAIN_TEXT_TYPES: ReadonlySet<string> = new Set([
  'bat', 'cmd', 'js', 'jse', 'vbs', 'vbe', 'ps1', 'psm1', 'hta', 'wsf', 'wsh', 'sh', 'py', 'pl', 'txt', 'csv', 'html', 'htm', 'svg', 'json', 'ini', 'inf', 'scf', 'url',
]);
