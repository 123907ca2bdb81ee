/**
 * URLFETCH (RFC 4467 §9) with the RFC 5524 URLAUTH=BINARY parameters: `URLFETCH url` answers the section's bytes,
 * `URLFETCH (url [BODY|BINARY] [BODYPARTSTRUCTURE])` a list of the items asked. A URL that is invalid, expired, not
 * for this user or for nothing that exists is answered NIL, the same in every case (RFC 4467 §10). Nothing is
 * marked \Seen.
 */
import { bad, no, type ImapCommand } from '../command.js';
import { TempFailure } from '../../lib/errors.js';
import { binaryData, encodeBinary, partialOf } from '../binary.js';
import { sectionData } from './fetch.js';
import { parseImapUrl } from '../imap-url.js';
import { tokenText, type Token } from '../parser.js';
import { encode, encodeString } from '../response.js';
import { bodyPartStructure, openUrl } from '../urlauth.js';

interface Request {
  url: string;
  /** RFC 5524 §3: the list form; the plain form is answered with a bare nstring. */
  extended: boolean;
  body: boolean;
  binary: boolean;
  structure: boolean;
}

function parseRequest(t: Token): Request {
  if (t.type !== 'list') {
    const url = tokenText(t);
    if (url === undefined) throw bad('Expected URL');
    return { url, extended: false, body: true, binary: false, structure: false };
  }
  const [first, ...params] = t.items;
  const url = tokenText(first);
  if (url === undefined) throw bad('Expected URL');
  const r: Request = { url, extended: true, body: false, binary: false, structure: false };
  for (const p of params) {
    const name = p.type === 'atom' ? p.value.toUpperCase() : '';
    if (name === 'BODY') r.body = true;
    else if (name === 'BINARY') r.binary = true;
    else if (name === 'BODYPARTSTRUCTURE') r.structure = true;
    else throw bad(`Unknown URLFETCH parameter ${name}`);
  }
  // RFC 5524 §3: BODY and BINARY are alternatives.
  if (r.body && r.binary) throw bad('BODY and BINARY together');
  return r;
}

export const urlfetch: ImapCommand = {
  names: ['URLFETCH'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    const ctx = session.urlauth;
    if (!ctx) throw bad('Unknown command URLFETCH');
    if (!cmd.args.length) throw bad('Expected URLs');
    const requests = cmd.args.map(parseRequest);
    for (const r of requests) {
      let value: Buffer = Buffer.from('NIL');
      let url;
      try {
        url = parseImapUrl(r.url, 'full');
      } catch {
        url = undefined;
      }
      let content;
      try {
        content = url && (await openUrl(ctx, url, { kind: 'user', user: session.user! }));
      } catch (err) {
        // RFC 5530 UNAVAILABLE: the directory could not answer; NIL would wrongly say the URL is bad.
        if (err instanceof TempFailure) throw no('Temporary failure, try again later', 'UNAVAILABLE');
        throw err;
      }
      if (content) {
        try {
          value = render(r, content);
        } catch {
          // A part we cannot decode for BINARY (RFC 3516 UNKNOWN-CTE) is, like any other failure here, NIL.
          value = Buffer.from('NIL');
        }
      }
      session.write(Buffer.concat([Buffer.from('* URLFETCH '), encodeString(r.url), Buffer.from(' '), value, Buffer.from('\r\n')]));
      await session.drain();
    }
  },
};

function render(r: Request, content: NonNullable<Awaited<ReturnType<typeof openUrl>>>): Buffer {
  const { url } = content;
  const body = () => encodeString(sectionData(content.raw, content.tree, { ...url.body, partial: url.partial }));
  if (!r.extended) return body();
  const items: Buffer[] = [];
  if (r.structure) {
    const structure = bodyPartStructure(content, r.binary);
    if (structure === undefined) throw new Error('no part');
    items.push(Buffer.from('BODYPARTSTRUCTURE '), encode(structure));
  }
  if (r.binary) {
    // RFC 5524 §3: BINARY is the part with its content transfer encoding undone, as FETCH BINARY gives it.
    if (url.body.specifier !== '') throw new Error('not a part');
    const data = partialOf(binaryData(content.raw, content.tree, url.body.path), url.partial);
    items.push(Buffer.from('BINARY '), encodeBinary(data, encodeString));
  } else if (r.body) items.push(Buffer.from('BODY '), body());
  return Buffer.concat([Buffer.from('('), ...items.flatMap((b, i) => (i && i % 2 === 0 ? [Buffer.from(' '), b] : [b])), Buffer.from(')')]);
}
