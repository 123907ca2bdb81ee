/**
 * PREVIEW (RFC 8970): a short plain-text preview of a message for FETCH PREVIEW. The algorithm is the server's
 * choice (§3.1); ours: the first text/plain part that is not an attachment, else the first text/html one with its
 * markup removed, decoded, with runs of white space made one space, cut to 256 characters (§3.1 "MUST NOT be
 * longer than 256 characters"). A message without such a part has the empty preview.
 */
import { headerValue, searchableText, type MimeNode } from './mime.js';

export const PREVIEW_MAX = 256;

function isAttachment(node: MimeNode): boolean {
  return /^\s*attachment\b/i.test(headerValue(node, 'content-disposition') ?? '');
}

/** Depth-first, not into attached messages (their text is not this message's). */
function firstPart(node: MimeNode, subtype: string): MimeNode | undefined {
  if (node.children.length) {
    for (const child of node.children) {
      const hit = firstPart(child, subtype);
      if (hit) return hit;
    }
    return undefined;
  }
  return node.type === 'text' && node.subtype === subtype && !isAttachment(node) ? node : undefined;
}

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** HTML to text, enough for a preview: no scripts, styles, comments or tags; character references decoded. */
export function htmlToText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, ref: string) => {
      if (ref[0] === '#') {
        const cp = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
        return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ';
      }
      return ENTITIES[ref.toLowerCase()] ?? whole;
    });
}

export function previewText(tree: MimeNode): string {
  const plain = firstPart(tree, 'plain');
  let text = '';
  if (plain) text = searchableText(plain);
  else {
    const html = firstPart(tree, 'html');
    if (html) text = htmlToText(searchableText(html));
  }
  const collapsed = text.replace(/\s+/gu, ' ').trim();
  const chars = [...collapsed];
  return chars.length > PREVIEW_MAX ? chars.slice(0, PREVIEW_MAX).join('') : collapsed;
}
