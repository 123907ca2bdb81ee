import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/lib/logger.ts';
import { SETTING_DEFS, type SettingKey, type SettingValue } from '../../../src/settings/keys.ts';
import type { SettingsReader } from '../../../src/filters/lists.ts';
import { attachments, detectType, inspectAttachments, type AttachmentPolicy } from '../../../src/filters/attachments.ts';
import { FilterPipeline } from '../../../src/filters/pipeline.ts';
import type { FilterContext, FilterVerdict } from '../../../src/filters/types.ts';
import {
  compoundFile,
  composeForward,
  composeMessage,
  elfExecutable,
  ensureArchiveTools,
  javaClass,
  make7z,
  makeDocx,
  makeOdt,
  makeTarGz,
  makeZeroBomb,
  makeZip,
  msiPackage,
  pdfDocument,
  peExecutable,
  type TestAttachment,
} from '../../helpers/attachments.ts';

before(() => ensureArchiveTools());

function settings(values: Partial<Record<SettingKey, unknown>>): SettingsReader {
  const parsed = new Map<SettingKey, unknown>();
  for (const [k, v] of Object.entries(values)) parsed.set(k as SettingKey, SETTING_DEFS[k as SettingKey].schema.parse(v));
  return {
    get<K extends SettingKey>(key: K): SettingValue<K> {
      return (parsed.has(key) ? parsed.get(key) : SETTING_DEFS[key].default) as SettingValue<K>;
    },
  };
}

const EXECUTABLES = { 'filter.attachments.executables': true };
const ARCHIVES = { 'filter.attachments.archives': true };
const ALL = { ...EXECUTABLES, ...ARCHIVES, 'filter.attachments.custom': ['rtf'] };

function ctx(message?: Buffer): FilterContext {
  return { id: 'Q1', client: { address: '192.0.2.7', listener: 'smtp' }, from: 'alice@remote.test', recipients: ['bob@corp.example'], message, tags: {} };
}

async function check(values: Partial<Record<SettingKey, unknown>>, message: Buffer): Promise<FilterVerdict> {
  return attachments({ settings: settings(values) }).check(ctx(message));
}

async function mail(...atts: TestAttachment[]): Promise<Buffer> {
  return composeMessage(atts);
}

/** Memoised: the bombs take a second each to make. */
function once<T>(fn: () => T): () => T {
  let v: { value: T } | null = null;
  return () => (v ??= { value: fn() }).value;
}
const zipBomb = once(() => makeZeroBomb(200));
const tarGzBomb = once(() => makeZeroBomb(200, 'tar.gz'));

function assertBlocked(v: FilterVerdict, cls: string, type: string, extra: Record<string, unknown> = {}) {
  assert.equal(v.action, 'reject', `expected a reject, got ${JSON.stringify(v)}`);
  assert.deepEqual(v.reply, { code: 554, enhanced: '5.7.1', text: `Message refused: attachment of blocked type (${cls}: ${type})` });
  assert.deepEqual(v.tags?.blockedAttachment, { class: cls, type, ...extra });
}

/** Runs `fn` while sampling memory; returns the result, the time taken and the peak growth of buffers + heap. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; peakMB: number }> {
  const usage = () => {
    const m = process.memoryUsage();
    return m.arrayBuffers + m.heapUsed;
  };
  const base = usage();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, usage())), 2);
  const started = Date.now();
  try {
    const value = await fn();
    peak = Math.max(peak, usage());
    return { value, ms: Date.now() - started, peakMB: (peak - base) / 1024 / 1024 };
  } finally {
    clearInterval(timer);
  }
}

// ---- Detection ----------------------------------------------------------------------------------------------------

test('file-type recognises the test files by content', async () => {
  assert.equal(await detectType(elfExecutable()), 'elf');
  assert.equal(await detectType(peExecutable()), 'exe');
  assert.equal(await detectType(msiPackage()), 'msi');
  assert.equal(await detectType(compoundFile()), 'cfb');
  assert.equal(await detectType(javaClass()), 'class');
  assert.equal(await detectType(pdfDocument()), 'pdf');
  assert.equal(await detectType(makeZip([['a.txt', 'hello']])), 'zip');
  assert.equal(await detectType(makeDocx()), 'docx');
  assert.equal(await detectType(makeOdt()), 'odt');
  assert.equal(await detectType(make7z([['a.txt', 'hello']])), '7z');
  assert.equal(await detectType(makeTarGz([['a.txt', 'hello']])), 'tar.gz');
  assert.equal(await detectType(Buffer.from('just text\r\n')), null);
});

// ---- Fast path ----------------------------------------------------------------------------------------------------

test('with no class enabled the stage accepts at once, without looking at the message', async () => {
  const stage = attachments({ settings: settings({}) });
  assert.equal(stage.phase, 'data');
  // No message at all: had it parsed anything, it would have thrown.
  assert.deepEqual(await stage.check(ctx(undefined)), { action: 'accept' });
});

// ---- Executables --------------------------------------------------------------------------------------------------

test('refuses an ELF executable (base64) when executables are blocked, naming class and type', async () => {
  const m = await mail({ filename: 'true', content: elfExecutable() });
  assertBlocked(await check(EXECUTABLES, m), 'executables', 'elf', { filename: 'true' });
  assert.equal((await check(ARCHIVES, m)).action, 'accept');
});

test('refuses a PE executable sent quoted-printable', async () => {
  const m = await mail({ filename: 'setup.exe', content: peExecutable(), encoding: 'quoted-printable' });
  assert.match(m.toString(), /Content-Transfer-Encoding: quoted-printable/);
  assertBlocked(await check(EXECUTABLES, m), 'executables', 'exe', { filename: 'setup.exe' });
});

test('refuses a renamed executable: "invoice.pdf" that is really an ELF', async () => {
  const m = await mail({ filename: 'invoice.pdf', content: elfExecutable(), contentType: 'application/pdf' });
  assertBlocked(await check(EXECUTABLES, m), 'executables', 'elf', { filename: 'invoice.pdf' });
});

test('accepts a real PDF with every class enabled', async () => {
  const m = await mail({ filename: 'invoice.pdf', content: pdfDocument(), contentType: 'application/pdf' });
  assert.deepEqual(await check(ALL, m), { action: 'accept' });
});

test('an executable named like a document is refused even without a file name or with a text/plain type', async () => {
  const m = await mail({ filename: 'readme.txt', content: peExecutable(), contentType: 'text/plain', encoding: 'quoted-printable' });
  assertBlocked(await check(EXECUTABLES, m), 'executables', 'exe', { filename: 'readme.txt' });
});

test('an MSI installer (OLE2 with the installer CLSID) is an executable; another OLE2 file (.doc) is not', async () => {
  assertBlocked(await check(EXECUTABLES, await mail({ filename: 'update.msi', content: msiPackage() })), 'executables', 'msi', { filename: 'update.msi' });
  assert.equal((await check(EXECUTABLES, await mail({ filename: 'report.doc', content: compoundFile() }))).action, 'accept');
});

test('a Java class file is an executable', async () => {
  assertBlocked(await check(EXECUTABLES, await mail({ filename: 'Main.class', content: javaClass() })), 'executables', 'class', { filename: 'Main.class' });
});

// ---- Archives -----------------------------------------------------------------------------------------------------

test('refuses a zip when archives are blocked; accepts a harmless zip when only executables are', async () => {
  const m = await mail({ filename: 'figures.zip', content: makeZip([['figures.csv', 'a,b\n1,2\n']]) });
  assertBlocked(await check(ARCHIVES, m), 'archives', 'zip', { filename: 'figures.zip' });
  assert.deepEqual(await check(EXECUTABLES, m), { action: 'accept' });
});

test('finds an executable inside a zip, and inside a zip inside a zip', async () => {
  const inner = makeZip([
    ['notes.txt', 'nothing to see'],
    ['bin/true', elfExecutable()],
  ]);
  const m1 = await mail({ filename: 'tools.zip', content: inner });
  assertBlocked(await check(EXECUTABLES, m1), 'executables', 'elf', { filename: 'tools.zip', path: 'tools.zip > bin/true' });
  const outer = makeZip([
    ['readme.txt', 'see inside'],
    ['tools.zip', inner],
  ]);
  const m2 = await mail({ filename: 'bundle.zip', content: outer });
  assertBlocked(await check(EXECUTABLES, m2), 'executables', 'elf', { filename: 'bundle.zip', path: 'bundle.zip > tools.zip > bin/true' });
  // A stored (uncompressed) PE inside a zip too.
  const m3 = await mail({ filename: 'setup.zip', content: makeZip([['setup.exe', peExecutable()]], { store: true }) });
  assertBlocked(await check(EXECUTABLES, m3), 'executables', 'exe', { filename: 'setup.zip', path: 'setup.zip > setup.exe' });
});

test('a 7z cannot be opened: refused as an archive, accepted (and tagged unchecked) when only executables are blocked', async () => {
  const m = await mail({ filename: 'tools.7z', content: make7z([['setup.exe', peExecutable()]]) });
  assertBlocked(await check(ARCHIVES, m), 'archives', '7z', { filename: 'tools.7z' });
  const v = await check(EXECUTABLES, m);
  assert.equal(v.action, 'accept');
  assert.deepEqual(v.tags, { attachmentsUnchecked: ['tools.7z (7z)'] });
});

test('looks into tar.gz: an executable inside is refused; the tar.gz itself is an archive', async () => {
  const m = await mail({ filename: 'src.tar.gz', content: makeTarGz([['README', 'hi'], ['bin/true', elfExecutable()]]) });
  assertBlocked(await check(EXECUTABLES, m), 'executables', 'elf', { filename: 'src.tar.gz', path: 'src.tar.gz > src.tar > bin/true' });
  assertBlocked(await check(ARCHIVES, m), 'archives', 'tar.gz', { filename: 'src.tar.gz' });
  const harmless = await mail({ filename: 'src.tgz', content: makeTarGz([['README', 'hi']]) });
  assert.deepEqual(await check(EXECUTABLES, harmless), { action: 'accept' });
});

test('an encrypted zip entry cannot be looked into: accepted when only executables are blocked, tagged unchecked', async () => {
  const m = await mail({ filename: 'secret.zip', content: makeZip([['setup.exe', peExecutable()]], { password: 'infected' }) });
  const v = await check(EXECUTABLES, m);
  assert.equal(v.action, 'accept');
  assert.deepEqual(v.tags, { attachmentsUnchecked: ['secret.zip > setup.exe (encrypted)'] });
  assertBlocked(await check(ARCHIVES, m), 'archives', 'zip', { filename: 'secret.zip' });
});

// ---- Office documents ---------------------------------------------------------------------------------------------

test('docx and odt are not archives unless officeAsArchive', async () => {
  const docx = await mail({ filename: 'report.docx', content: makeDocx() });
  const odt = await mail({ filename: 'report.odt', content: makeOdt() });
  assert.deepEqual(await check(ALL, docx), { action: 'accept' });
  assert.deepEqual(await check(ALL, odt), { action: 'accept' });
  const asArchive = { ...ARCHIVES, 'filter.attachments.officeAsArchive': true };
  assertBlocked(await check(asArchive, docx), 'archives', 'docx', { filename: 'report.docx' });
  assertBlocked(await check(asArchive, odt), 'archives', 'odt', { filename: 'report.odt' });
});

test('a zip dressed up as a docx is still looked into: an executable inside is refused', async () => {
  const fake = makeDocx([['word/media/image1.png', peExecutable()]]);
  assert.equal(await detectType(fake), 'docx');
  const m = await mail({ filename: 'report.docx', content: fake });
  assertBlocked(await check(EXECUTABLES, m), 'executables', 'exe', { filename: 'report.docx', path: 'report.docx > word/media/image1.png' });
  // Only archives blocked: a zip inside a document is an archive.
  const zipInDoc = await mail({ filename: 'r.docx', content: makeDocx([['word/embeddings/x.zip', makeZip([['a.txt', 'a']])]]) });
  assertBlocked(await check(ARCHIVES, zipInDoc), 'archives', 'zip', { filename: 'r.docx', path: 'r.docx > word/embeddings/x.zip' });
});

// ---- Custom -------------------------------------------------------------------------------------------------------

test('custom types are refused by content at any depth, whatever the other classes say', async () => {
  const pdf = await mail({ filename: 'scan.bin', content: pdfDocument() });
  assertBlocked(await check({ 'filter.attachments.custom': ['pdf'] }, pdf), 'custom', 'pdf', { filename: 'scan.bin' });
  const zipped = await mail({ filename: 'x.zip', content: makeZip([['setup.exe', peExecutable()]]) });
  assertBlocked(await check({ 'filter.attachments.custom': ['.EXE'] }, zipped), 'custom', 'exe', { filename: 'x.zip', path: 'x.zip > setup.exe' });
  // "gz" also matches tar.gz; executables win over custom when both apply.
  const tgz = await mail({ filename: 'a.tgz', content: makeTarGz([['a', 'a']]) });
  assertBlocked(await check({ 'filter.attachments.custom': ['gz'] }, tgz), 'custom', 'tar.gz', { filename: 'a.tgz' });
  const exe = await mail({ filename: 'a.exe', content: peExecutable() });
  assertBlocked(await check({ ...EXECUTABLES, 'filter.attachments.custom': ['exe'] }, exe), 'executables', 'exe', { filename: 'a.exe' });
});

// ---- Embedded messages --------------------------------------------------------------------------------------------

test('looks into attached messages (message/rfc822)', async () => {
  const inner = await mail({ filename: 'true', content: elfExecutable() });
  const fwd = await composeForward(inner);
  assert.match(fwd.toString(), /Content-Type: message\/rfc822/);
  assertBlocked(await check(EXECUTABLES, fwd), 'executables', 'elf', { filename: 'true', path: 'forwarded.eml > true' });
});

// ---- Bounds -------------------------------------------------------------------------------------------------------

test('a zip bomb (200 MB of zeros) is refused as too large to inspect, in bounded time and memory', async () => {
  const bomb = zipBomb();
  assert.ok(bomb.length < 1024 * 1024, `bomb is ${bomb.length} bytes`);
  const m = await mail({ filename: 'bomb.zip', content: bomb });
  const { value: v, ms, peakMB } = await measured(() => check(EXECUTABLES, m));
  assert.equal(v.action, 'reject');
  assert.deepEqual(v.reply, { code: 554, enhanced: '5.7.1', text: 'Message refused: archive too large to inspect (zip)' });
  assert.deepEqual(v.tags?.blockedAttachment, { class: 'uninspectable', type: 'zip', reason: 'too-large', path: 'bomb.zip', filename: 'bomb.zip' });
  assert.ok(ms < 3000, `took ${ms} ms`);
  assert.ok(peakMB < 64, `memory grew by ${peakMB.toFixed(1)} MB`);
  // Without the ratio guard the declared size (200 MB > 100 MB) still stops it before anything is inflated.
  const policy: AttachmentPolicy = { executables: true, archives: false, officeAsArchive: false, custom: [] };
  const r = await inspectAttachments(m, policy, { maxRatio: Infinity });
  assert.equal(r.blocked?.reason, 'too-large');
  // Blocked as an archive before any inspection when archives are blocked.
  assertBlocked(await check(ARCHIVES, m), 'archives', 'zip', { filename: 'bomb.zip' });
});

test('a nested zip bomb (zips of bombs) is refused as too large to inspect', async () => {
  const nested = makeZip(Array.from({ length: 8 }, (_, i): [string, Buffer] => [`bomb${i}.zip`, zipBomb()]));
  const m = await mail({ filename: 'nested.zip', content: nested });
  const { value: v, ms, peakMB } = await measured(() => check(EXECUTABLES, m));
  assert.equal(v.action, 'reject');
  assert.equal(v.reply?.text, 'Message refused: archive too large to inspect (zip)');
  assert.ok(ms < 3000, `took ${ms} ms`);
  assert.ok(peakMB < 64, `memory grew by ${peakMB.toFixed(1)} MB`);
});

test('a tar.gz bomb is inflated no further than the bound, then refused', async () => {
  const m = await mail({ filename: 'bomb.tgz', content: tarGzBomb() });
  const { value: v, ms, peakMB } = await measured(() => check(EXECUTABLES, m));
  assert.equal(v.action, 'reject');
  assert.equal(v.reply?.text, 'Message refused: archive too large to inspect (tar.gz)');
  assert.ok(ms < 5000, `took ${ms} ms`);
  // 200 × the compressed size at most (about 40 MB), never the 200 MB it would expand to.
  assert.ok(peakMB < 120, `memory grew by ${peakMB.toFixed(1)} MB`);
});

test('archives nested deeper than the bound are refused as too deep; within the bound the executable is found', async () => {
  let z = makeZip([['true', elfExecutable()]]);
  for (let i = 0; i < 2; i++) z = makeZip([[`level${i}.zip`, z]]);
  // attached zip > level1.zip > level0.zip > true: the executable is at depth 3.
  assertBlocked(await check(EXECUTABLES, await mail({ filename: 'deep.zip', content: z })), 'executables', 'elf', {
    filename: 'deep.zip',
    path: 'deep.zip > level1.zip > level0.zip > true',
  });
  const deeper = makeZip([['level2.zip', z]]);
  const v = await check(EXECUTABLES, await mail({ filename: 'deeper.zip', content: deeper }));
  assert.equal(v.action, 'reject');
  assert.equal(v.reply?.text, 'Message refused: archive nested too deep to inspect (zip)');
});

test('too many entries, and a damaged zip, cannot be vouched for when executables are blocked', async () => {
  const many = makeZip(Array.from({ length: 20 }, (_, i): [string, string] => [`f${i}.txt`, `file ${i}`]));
  const m = await mail({ filename: 'many.zip', content: many });
  const policy: AttachmentPolicy = { executables: true, archives: false, officeAsArchive: false, custom: [] };
  assert.equal((await inspectAttachments(m, policy, { maxEntries: 10 })).blocked?.reason, 'too-large');
  assert.equal((await inspectAttachments(m, policy, { maxEntries: 100 })).blocked, null);
  const truncated = makeZip([['setup.exe', peExecutable()]]);
  const v = await check(EXECUTABLES, await mail({ filename: 'cut.zip', content: truncated.subarray(0, truncated.length - 30) }));
  assert.equal(v.action, 'reject');
  assert.equal(v.reply?.text, 'Message refused: damaged archive cannot be inspected (zip)');
});

test('an office document too large to look into is accepted when only archives are blocked (tagged unchecked)', async () => {
  const docx = await mail({ filename: 'big.docx', content: makeDocx([['word/media/a.txt', 'x'.repeat(5000)]]) });
  const policy: AttachmentPolicy = { executables: false, archives: true, officeAsArchive: false, custom: [] };
  const r = await inspectAttachments(docx, policy, { maxUncompressedBytes: 1000 });
  assert.equal(r.blocked, null);
  assert.deepEqual(r.unchecked, ['big.docx (docx: archive too large to inspect)']);
});

// ---- In the pipeline ----------------------------------------------------------------------------------------------

test('in the pipeline: refused with the 554 reply; a missing message is a temporary failure, not a pass', async () => {
  const p = new FilterPipeline({ stages: [attachments({ settings: settings(EXECUTABLES) })], log: silentLogger });
  const r = await p.run('data', ctx(await mail({ filename: 'a.exe', content: peExecutable() })));
  assert.equal(r.action, 'reject');
  assert.equal(r.reply?.text, 'Message refused: attachment of blocked type (executables: exe)');
  const r2 = await p.run('data', ctx(undefined));
  assert.equal(r2.action, 'tempfail');
  assert.equal(r2.reply?.code, 451);
});
