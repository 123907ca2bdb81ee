/**
 * FETCH's content tree (src/imap/commands/fetch.ts contentTree): items answered from the message's top-level header
 * and body skip the MIME parse. The bytes must be the same as from the parsed tree for every such item and every
 * shape of message (multipart, nested message/rfc822, no body, no blank line, bare LF), and anything that needs the
 * structure (a part, BODY, BODYSTRUCTURE or ENVELOPE not cached, BINARY) must get the parsed tree.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { contentTree, sectionData } from '../../../src/imap/commands/fetch.ts';
import { parseMime } from '../../../src/imap/mime.ts';
import { parseFetchAtt, type FetchAtt } from '../../../src/imap/parser.ts';
import { NESTED } from './fixtures.ts';


const MESSAGES: Record<string, string> = {
  multipart: NESTED,
  plain: 'From: a@x.com\r\nTo: b@y.org\r\nCc: c@z.net\r\nSubject: plain\r\nMessage-ID: <1@x>\r\n\r\nline 1\r\nline 2\r\n',
  'no body': 'From: a@x.com\r\nSubject: empty\r\n\r\n',
  'no blank line': 'From: a@x.com\r\nSubject: header only\r\n',
  'bare LF': 'From: a@x.com\nSubject: lf\nContent-Type: multipart/alternative; boundary=x\n\n--x\n\npart\n--x--\n',
  empty: '',
};

const TOP_LEVEL = ['BODY[]', 'BODY.PEEK[HEADER]', 'BODY[TEXT]', 'BODY.PEEK[HEADER.FIELDS (From Subject Message-ID)]', 'BODY[HEADER.FIELDS.NOT (Subject)]', 'BODY[]<2.10>', 'BODY.PEEK[TEXT]<0.5>'];

const att = (text: string): FetchAtt => parseFetchAtt(text);

describe('FETCH content tree', () => {
  for (const [name, text] of Object.entries(MESSAGES)) {
    test(`top-level sections of a ${name} message are the same bytes without the MIME parse`, () => {
      const raw = Buffer.from(text);
      const atts = [...TOP_LEVEL.map(att), att('RFC822.SIZE'), att('FLAGS'), att('UID')];
      const shallow = contentTree(raw, atts, {});
      const full = parseMime(raw);
      for (const a of atts) {
        if (a.kind !== 'section') continue;
        assert.deepEqual(sectionData(raw, shallow, a.section), sectionData(raw, full, a.section), `${name}: ${a.section.responseName}`);
      }
      // RFC822.HEADER and RFC822.TEXT render the tree's header and body.
      assert.deepEqual(shallow.header, full.header);
      assert.deepEqual(shallow.body, full.body);
    });
  }

  test('the MIME structure is parsed only when an item needs it', () => {
    const raw = Buffer.from(NESTED);
    assert.equal(contentTree(raw, [att('BODY.PEEK[HEADER]'), att('RFC822.HEADER'), att('RFC822.TEXT')], {}).children.length, 0, 'top-level only: not parsed');
    for (const needs of ['BODY[1]', 'BODY[2.HEADER]', 'BODY[1.MIME]', 'BODY', 'BODYSTRUCTURE', 'ENVELOPE', 'BINARY[1]', 'BINARY.SIZE[1]', 'PREVIEW']) {
      const tree = contentTree(raw, [att('BODY.PEEK[HEADER]'), att(needs)], {});
      assert.equal(tree.children.length, 2, `${needs} gets the parsed tree`);
      assert.equal(tree.type, 'multipart');
    }
    // ENVELOPE and BODYSTRUCTURE from the folder index's cache need no parse.
    const cached = { envelope: Buffer.from('(NIL)'), bodystructure: Buffer.from('(NIL)') };
    assert.equal(contentTree(raw, [att('ENVELOPE'), att('BODYSTRUCTURE'), att('BODY.PEEK[TEXT]')], cached).children.length, 0);
  });
});
