/**
 * The antivirus stage against a real clamd (DESIGN.md §5): the shared one test/run.ts starts (EICAR-only database)
 * over its Unix socket and over TCP, and a private one this file stops and starts ("clamd went away") so that other
 * test files using the shared clamd are not disturbed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { crc32, deflateRawSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { ClamavConfig } from '../../src/config/schema.js';
import { ClamdError, ClamdScanner, clamavStage, clamdAddress, DEFAULT_CLAMD_SOCKET } from '../../src/filters/clamav.js';
import { FilterPipeline } from '../../src/filters/pipeline.js';
import type { FilterContext } from '../../src/filters/types.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import { openSettings, type Settings } from '../../src/settings/index.js';
import { EICAR, EICAR_SIGNATURE, startClamd, type Clamd } from '../harness/clamd.js';
import { serviceStatus } from '../harness/control.js';

const env = process.env;
const skip = env.POSTERN_TEST_CLAMD_SOCKET ? false : 'needs clamd: run through node --import tsx test/run.ts';

// ---- messages ----------------------------------------------------------------------------------------------------

const HEAD = 'From: Mallory <mallory@example.net>\r\nTo: alice@corp.example\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n';

function plainMessage(body: string, subject = 'Hello'): Buffer {
  return Buffer.from(`${HEAD}Subject: ${subject}\r\nMessage-ID: <${Math.random()}@example.net>\r\n\r\n${body}\r\n`);
}

function withAttachment(name: string, type: string, data: Buffer): Buffer {
  const b64 = data.toString('base64').replace(/.{1,76}/g, '$&\r\n');
  return Buffer.from(
    `${HEAD}Subject: the report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n` +
      `--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlease find the report attached.\r\n` +
      `--b1\r\nContent-Type: ${type}; name="${name}"\r\nContent-Transfer-Encoding: base64\r\n` +
      `Content-Disposition: attachment; filename="${name}"\r\n\r\n${b64}--b1--\r\n`,
  );
}

/**
 * A zip archive with deflated entries (APPNOTE.TXT §4.3): deflate leaves no trace of the EICAR text in the archive
 * bytes, so only a scanner that unpacks the archive can find it.
 */
function zip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const packed = deflateRawSync(e.data);
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(8, 10);
    cd.writeUInt16LE(0x21, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(packed.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    locals.push(local, name, packed);
    central.push(cd, name);
    offset += local.length + name.length + packed.length;
  }
  const cdBuf = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cdBuf.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cdBuf, eocd]);
}

function ctx(message: Buffer, tags: Record<string, unknown> = {}): FilterContext {
  return {
    id: 'AV1',
    client: { address: '192.0.2.10', listener: 'smtp' },
    from: 'mallory@example.net',
    recipients: ['alice@corp.example'],
    message,
    tags,
  };
}

function captureLogger(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger('debug', sink), lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

/** A TCP server standing in for a broken clamd: `onData` decides what (if anything) it answers. */
async function fakeClamd(onData: (sock: Socket, data: Buffer) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.on('data', (d) => onData(sock, d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

// ---- tests -------------------------------------------------------------------------------------------------------

describe('ClamAV stage (clamd INSTREAM)', { skip }, () => {
  let dataDir: string;
  let settings: Settings;
  const socketConfig = (): ClamavConfig => ({ socket: env.POSTERN_TEST_CLAMD_SOCKET!, timeoutMs: 10_000 });
  const tcpConfig = (): ClamavConfig => ({ host: env.POSTERN_TEST_CLAMD_HOST!, port: Number(env.POSTERN_TEST_CLAMD_PORT), timeoutMs: 10_000 });

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'postern-clamav-test-'));
    settings = openSettings(dataDir);
  });
  after(() => {
    settings.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('defaults: Debian socket, then host/port with clamd defaults', () => {
    assert.deepEqual(clamdAddress({}), { socket: DEFAULT_CLAMD_SOCKET });
    assert.deepEqual(clamdAddress({ host: 'av.corp.example' }), { host: 'av.corp.example', port: 3310 });
    assert.deepEqual(clamdAddress({ port: 3311 }), { host: '127.0.0.1', port: 3311 });
    assert.deepEqual(clamdAddress({ socket: '/s', host: 'h', port: 1 }), { socket: '/s' });
  });

  for (const [how, config] of [
    ['Unix socket', socketConfig],
    ['TCP', tcpConfig],
  ] as const) {
    it(`a clean message is accepted (${how})`, async () => {
      const stage = clamavStage({ config: config(), settings, log: silentLogger });
      assert.equal(stage.phase, 'data');
      const v = await stage.check(ctx(plainMessage('Hi Alice, the meeting moved to 3pm.')));
      assert.equal(v.action, 'accept');
    });

    it(`EICAR as the plain-text body is refused with the signature name (${how})`, async () => {
      settings.set('filter.antivirus.action', 'reject');
      const { log, lines } = captureLogger();
      const stage = clamavStage({ config: config(), settings, log });
      const v = await stage.check(ctx(plainMessage(EICAR)));
      assert.equal(v.action, 'reject');
      assert.equal(v.reply?.code, 554);
      assert.equal(v.reply?.enhanced, '5.7.1');
      assert.match(v.reply!.text, new RegExp(`^Message refused: virus found \\(${EICAR_SIGNATURE}(\\.UNOFFICIAL)?\\)$`));
      assert.match(String(v.tags?.virus), new RegExp(EICAR_SIGNATURE));
      const line = lines().find((l) => l.virus);
      assert.ok(line, 'the virus is logged');
      assert.equal(line.component, 'filter');
      assert.equal(line.stage, 'clamav');
      assert.equal(line.id, 'AV1');
      assert.equal(line.virus, v.tags?.virus);
    });
  }

  it('EICAR inside a zip attachment is found (clamd unpacks the archive)', async () => {
    const archive = zip([
      { name: 'readme.txt', data: Buffer.from('Quarterly numbers\r\n'.repeat(20)) },
      { name: 'invoice.com', data: Buffer.from(EICAR) },
    ]);
    assert.equal(archive.includes('EICAR'), false, 'the archive bytes do not show the EICAR text');
    const stage = clamavStage({ config: socketConfig(), settings, log: silentLogger });
    const v = await stage.check(ctx(withAttachment('invoice.zip', 'application/zip', archive)));
    assert.equal(v.action, 'reject');
    assert.match(String(v.tags?.virus), new RegExp(EICAR_SIGNATURE));
  });

  it('EICAR inside a zip inside a zip is found', async () => {
    const inner = zip([{ name: 'eicar.com', data: Buffer.from(EICAR) }]);
    const outer = zip([{ name: 'inner.zip', data: inner }]);
    assert.equal(outer.includes('EICAR'), false);
    const stage = clamavStage({ config: tcpConfig(), settings, log: silentLogger });
    const v = await stage.check(ctx(withAttachment('archive.zip', 'application/zip', outer)));
    assert.equal(v.action, 'reject');
    assert.match(String(v.tags?.virus), new RegExp(EICAR_SIGNATURE));
    // The same archive without the virus is clean: the detection is the EICAR file, not the nesting.
    const clean = zip([{ name: 'inner.zip', data: zip([{ name: 'notes.txt', data: Buffer.from('nothing to see') }]) }]);
    assert.equal((await stage.check(ctx(withAttachment('archive.zip', 'application/zip', clean)))).action, 'accept');
  });

  it('concurrent scans through one stage each get their own answer', async () => {
    const stage = clamavStage({ config: tcpConfig(), settings, log: silentLogger });
    const infected = (i: number) => i % 3 === 0;
    const verdicts = await Promise.all(
      Array.from({ length: 24 }, (_, i) => stage.check(ctx(plainMessage(infected(i) ? EICAR : `message number ${i}`)))),
    );
    assert.deepEqual(
      verdicts.map((v) => v.action),
      Array.from({ length: 24 }, (_, i) => (infected(i) ? 'reject' : 'accept')),
    );
  });

  it('filter.antivirus.action discard: accepted and dropped, tagged with the virus', async () => {
    settings.set('filter.antivirus.action', 'discard');
    try {
      const stage = clamavStage({ config: socketConfig(), settings, log: silentLogger });
      const v = await stage.check(ctx(plainMessage(EICAR)));
      assert.equal(v.action, 'discard');
      assert.equal(v.reply, undefined);
      assert.match(String(v.tags?.virus), new RegExp(EICAR_SIGNATURE));
    } finally {
      settings.unset('filter.antivirus.action');
    }
  });

  it('allow lists do not skip it (seed: antivirus checks are enforced despite whitelist settings)', async () => {
    const stage = clamavStage({ config: socketConfig(), settings, log: silentLogger });
    const v = await stage.check(ctx(plainMessage(EICAR), { spamExempt: true, spamExemptRecipients: ['alice@corp.example'] }));
    assert.equal(v.action, 'reject');
  });

  it('filter.antivirus off: accepted without asking clamd', async () => {
    settings.set('filter.antivirus', false);
    try {
      // A clamd that does not exist: asking it would throw.
      const stage = clamavStage({ config: { socket: join(dataDir, 'no-such.sock'), timeoutMs: 1000 }, settings, log: silentLogger });
      assert.equal((await stage.check(ctx(plainMessage(EICAR)))).action, 'accept');
    } finally {
      settings.unset('filter.antivirus');
    }
  });

  it('clamd unreachable (no socket, closed port) → the stage throws; the pipeline answers 451 4.7.1', async () => {
    const t0 = Date.now();
    for (const config of [{ socket: join(dataDir, 'no-such.sock'), timeoutMs: 5000 }, { host: '127.0.0.1', port: 1, timeoutMs: 5000 }]) {
      const stage = clamavStage({ config, settings, log: silentLogger });
      await assert.rejects(stage.check(ctx(plainMessage('hello'))), ClamdError);
      const pipeline = new FilterPipeline({
        stages: [stage],
        log: silentLogger,
        onFailure: () => settings.get('filter.antivirus.onFailure'),
      });
      const r = await pipeline.run('data', ctx(plainMessage('hello')));
      assert.equal(r.action, 'tempfail');
      assert.equal(r.reply?.code, 451);
      assert.equal(r.reply?.enhanced, '4.7.1');
    }
    assert.ok(Date.now() - t0 < 3000, 'a refused connection fails at once, not at the timeout');
  });

  it('clamd accepting but never answering → throws at timeoutMs', async () => {
    const fake = await fakeClamd(() => {});
    try {
      const scanner = new ClamdScanner({ host: '127.0.0.1', port: fake.port, timeoutMs: 400 });
      const t0 = Date.now();
      await assert.rejects(scanner.scan(plainMessage('hello')), /no answer within 400 ms/);
      const ms = Date.now() - t0;
      assert.ok(ms >= 390 && ms < 3000, `${ms} ms`);
    } finally {
      await fake.close();
    }
  });

  it('an ERROR reply, or a connection closed without a reply → throws (never a pass)', async () => {
    const errorReply = await fakeClamd((sock) => sock.end('stream: INSTREAM size limit exceeded. ERROR\0'));
    const silentClose = await fakeClamd((sock) => sock.end());
    try {
      for (const fake of [errorReply, silentClose]) {
        const scanner = new ClamdScanner({ host: '127.0.0.1', port: fake.port, timeoutMs: 2000 });
        await assert.rejects(scanner.scan(plainMessage('hello')), ClamdError);
      }
    } finally {
      await errorReply.close();
      await silentClose.close();
    }
  });

  it('the shared clamd can be controlled through POSTERN_TEST_DC_CONTROL', async () => {
    assert.deepEqual(await serviceStatus('clamd'), { running: true });
  });

  describe('a clamd of its own, stopped mid-run', () => {
    let own: Clamd;
    before(async () => {
      own = await startClamd({ streamMaxLength: '64K' });
    });
    after(() => own?.destroy());

    it('works, then throws while clamd is stopped (451 through the pipeline, accept when onFailure says so), then works again', async () => {
      const stage = clamavStage({ config: { socket: own.socket, timeoutMs: 5000 }, settings, log: silentLogger });
      const pipeline = new FilterPipeline({ stages: [stage], log: silentLogger, onFailure: () => settings.get('filter.antivirus.onFailure') });
      assert.equal((await stage.check(ctx(plainMessage(EICAR)))).action, 'reject');

      await own.stop();
      assert.equal(own.running, false);
      await assert.rejects(stage.check(ctx(plainMessage(EICAR))), ClamdError);
      let r = await pipeline.run('data', ctx(plainMessage(EICAR)));
      assert.deepEqual([r.action, r.reply?.code, r.reply?.enhanced], ['tempfail', 451, '4.7.1']);
      settings.set('filter.antivirus.onFailure', 'accept');
      try {
        const c = ctx(plainMessage(EICAR));
        r = await pipeline.run('data', c);
        assert.equal(r.action, 'accept');
        assert.deepEqual(c.tags.failedStages, ['clamav']);
      } finally {
        settings.unset('filter.antivirus.onFailure');
      }

      await own.start();
      assert.equal((await stage.check(ctx(plainMessage(EICAR)))).action, 'reject');
      assert.equal((await stage.check(ctx(plainMessage('clean again')))).action, 'accept');
    });

    it('a message over clamd StreamMaxLength → throws (clamd answers ERROR), not a pass', async () => {
      const stage = clamavStage({ config: { socket: own.socket, timeoutMs: 5000 }, settings, log: silentLogger });
      const big = plainMessage('x'.repeat(76) + '\r\n'.repeat(1) + ('y'.repeat(76) + '\r\n').repeat(1500) + EICAR);
      await assert.rejects(stage.check(ctx(big)), ClamdError);
    });
  });
});
