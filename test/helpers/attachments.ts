/**
 * Real files for the attachment filter tests: executables, archives made with the `zip`, `7z` and `tar` tools, office
 * documents with their real structure, a zip bomb, and MIME messages composed by nodemailer's MailComposer.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import MailComposer from 'nodemailer/lib/mail-composer';
import { ensureDebianPackages, type DebianPackage } from '../harness/packages.ts';

/** The tools these helpers run; tar and truncate are in every Debian base system. */
export const ARCHIVE_TOOLS: DebianPackage[] = [
  { binary: 'zip', package: 'zip' },
  { binary: '7z', package: 'p7zip-full' },
  { binary: 'tar', package: 'tar' },
  { binary: 'truncate', package: 'coreutils' },
];

/** Installs zip and 7z when missing (as root), or fails naming them: call from the test file's before(). */
export function ensureArchiveTools(): Promise<void> {
  return ensureDebianPackages(ARCHIVE_TOOLS);
}

export type FileList = [name: string, data: Buffer | string][];

/** Runs `fn` in a fresh temporary directory, removed afterwards. */
export function inTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'postern-att-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeFiles(dir: string, files: FileList): string[] {
  return files.map(([name, data]) => {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), data);
    return name;
  });
}

/** An ELF executable: the machine's own /bin/true. */
export function elfExecutable(): Buffer {
  return readFileSync('/bin/true');
}

/**
 * A minimal valid PE32 console program (i386): DOS header with e_lfanew, "PE\0\0", COFF header, a full optional
 * header with 16 data directories, one .text section whose code is a single `ret`. 1024 bytes.
 */
export function peExecutable(): Buffer {
  const b = Buffer.alloc(0x400);
  b.write('MZ', 0, 'latin1');
  b.writeUInt16LE(0x90, 0x02); // bytes on last page
  b.writeUInt16LE(3, 0x04); // pages
  b.writeUInt16LE(4, 0x08); // header paragraphs
  b.writeUInt16LE(0xffff, 0x0c);
  b.writeUInt16LE(0xb8, 0x10); // sp
  b.writeUInt16LE(0x40, 0x18); // relocation table offset: new-style executable
  b.writeUInt32LE(0x40, 0x3c); // e_lfanew
  let p = 0x40;
  b.write('PE\0\0', p, 'latin1');
  p += 4;
  // COFF file header
  b.writeUInt16LE(0x014c, p); // i386
  b.writeUInt16LE(1, p + 2); // sections
  b.writeUInt16LE(0xe0, p + 16); // size of optional header
  b.writeUInt16LE(0x0102, p + 18); // executable image, 32-bit
  p += 20;
  // Optional header (PE32)
  const o = p;
  b.writeUInt16LE(0x10b, o);
  b.writeUInt32LE(0x200, o + 4); // size of code
  b.writeUInt32LE(0x1000, o + 16); // entry point
  b.writeUInt32LE(0x1000, o + 20); // base of code
  b.writeUInt32LE(0x2000, o + 24); // base of data
  b.writeUInt32LE(0x400000, o + 28); // image base
  b.writeUInt32LE(0x1000, o + 32); // section alignment
  b.writeUInt32LE(0x200, o + 36); // file alignment
  b.writeUInt16LE(4, o + 40); // OS version
  b.writeUInt16LE(4, o + 48); // subsystem version
  b.writeUInt32LE(0x2000, o + 56); // size of image
  b.writeUInt32LE(0x200, o + 60); // size of headers
  b.writeUInt16LE(3, o + 68); // console subsystem
  b.writeUInt32LE(0x100000, o + 72); // stack reserve
  b.writeUInt32LE(0x1000, o + 76); // stack commit
  b.writeUInt32LE(0x100000, o + 80); // heap reserve
  b.writeUInt32LE(0x1000, o + 84); // heap commit
  b.writeUInt32LE(16, o + 92); // data directories
  p = o + 0xe0;
  // Section header
  b.write('.text', p, 'latin1');
  b.writeUInt32LE(1, p + 8); // virtual size
  b.writeUInt32LE(0x1000, p + 12); // virtual address
  b.writeUInt32LE(0x200, p + 16); // raw size
  b.writeUInt32LE(0x200, p + 20); // raw pointer
  b.writeUInt32LE(0x60000020, p + 36); // code, execute, read
  b[0x200] = 0xc3; // ret
  return b;
}

/**
 * A compound file (MS-CFB, version 3) with one directory sector whose root entry has `clsid` (hex, as stored).
 * The Windows Installer CLSID makes it an .msi; zeros make it a plain OLE2 file (like a .doc).
 */
export function compoundFile(clsid = '00'.repeat(16)): Buffer {
  const b = Buffer.alloc(512 * 3);
  Buffer.from('d0cf11e0a1b11ae1', 'hex').copy(b, 0);
  b.writeUInt16LE(0x3e, 0x18); // minor version
  b.writeUInt16LE(3, 0x1a); // major version
  b.writeUInt16LE(0xfffe, 0x1c); // little-endian
  b.writeUInt16LE(9, 0x1e); // 512-byte sectors
  b.writeUInt16LE(6, 0x20); // 64-byte mini sectors
  b.writeUInt32LE(1, 0x2c); // FAT sectors
  b.writeUInt32LE(1, 0x30); // first directory sector
  b.writeUInt32LE(0x1000, 0x38); // mini stream cutoff
  b.writeUInt32LE(0xfffffffe, 0x3c); // no mini FAT
  b.writeUInt32LE(0xfffffffe, 0x44); // no DIFAT sectors
  b.writeUInt32LE(0, 0x4c); // DIFAT[0]: FAT in sector 0
  for (let i = 1; i < 109; i++) b.writeUInt32LE(0xffffffff, 0x4c + i * 4);
  // Sector 0: the FAT. Sector 0 is a FAT sector, sector 1 the directory (end of chain).
  const fat = 512;
  b.writeUInt32LE(0xfffffffd, fat);
  b.writeUInt32LE(0xfffffffe, fat + 4);
  for (let i = 2; i < 128; i++) b.writeUInt32LE(0xffffffff, fat + i * 4);
  // Sector 1: the directory; entry 0 is the root.
  const dir = 1024;
  const name = Buffer.from('Root Entry\0', 'utf16le');
  name.copy(b, dir);
  b.writeUInt16LE(name.length, dir + 0x40);
  b[dir + 0x42] = 5; // root storage
  b[dir + 0x43] = 1; // black
  b.writeUInt32LE(0xffffffff, dir + 0x44);
  b.writeUInt32LE(0xffffffff, dir + 0x48);
  b.writeUInt32LE(0xffffffff, dir + 0x4c);
  Buffer.from(clsid, 'hex').copy(b, dir + 0x50);
  b.writeUInt32LE(0xfffffffe, dir + 0x74); // no mini stream
  for (let e = 1; e < 4; e++) {
    b.writeUInt32LE(0xffffffff, dir + e * 128 + 0x44);
    b.writeUInt32LE(0xffffffff, dir + e * 128 + 0x48);
    b.writeUInt32LE(0xffffffff, dir + e * 128 + 0x4c);
  }
  return b;
}

/** {000C1084-0000-0000-C000-000000000046} as stored: Windows Installer package. */
export const MSI_CLSID = '84100c0000000000c000000000000046';

export function msiPackage(): Buffer {
  return compoundFile(MSI_CLSID);
}

/** A Java class file (Java 8, major version 52): CAFEBABE, minor, major, then an empty constant pool. */
export function javaClass(): Buffer {
  return Buffer.from('cafebabe000000340001', 'hex');
}

/** A small but complete PDF (header, catalog, pages, one page, xref table, trailer). */
export function pdfDocument(): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>',
  ];
  let body = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(Buffer.byteLength(body, 'latin1'));
    body += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(body, 'latin1');
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) body += `${String(off).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

export interface ZipOptions {
  /** Store without compression (-0). */
  store?: boolean;
  /** Traditional PKWARE encryption with this password (-P). */
  password?: string;
}

/** A zip made by the `zip` tool, entries in the given order. */
export function makeZip(files: FileList, opts: ZipOptions = {}): Buffer {
  return inTmp((dir) => {
    const names = writeFiles(join(dir, 'in'), files);
    const args = ['-X', '-q', ...(opts.store ? ['-0'] : []), ...(opts.password ? ['-P', opts.password] : []), join(dir, 'out.zip'), ...names];
    execFileSync('zip', args, { cwd: join(dir, 'in') });
    return readFileSync(join(dir, 'out.zip'));
  });
}

/** A docx as Word writes it: [Content_Types].xml first, the package relationships, word/document.xml. */
export function makeDocx(extra: FileList = []): Buffer {
  return makeZip([
    [
      '[Content_Types].xml',
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
        '<Default Extension="xml" ContentType="application/xml"/>' +
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>' +
        '</Types>',
    ],
    [
      '_rels/.rels',
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>' +
        '</Relationships>',
    ],
    [
      'word/document.xml',
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">' +
        '<w:body><w:p><w:r><w:t>Quarterly figures</w:t></w:r></w:p></w:body></w:document>',
    ],
    ...extra,
  ]);
}

/** An odt as LibreOffice writes it: `mimetype` first and stored, then the manifest and the content. */
export function makeOdt(): Buffer {
  return inTmp((dir) => {
    const src = join(dir, 'in');
    writeFiles(src, [
      ['mimetype', 'application/vnd.oasis.opendocument.text'],
      [
        'META-INF/manifest.xml',
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
          '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">' +
          '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>' +
          '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>' +
          '</manifest:manifest>',
      ],
      [
        'content.xml',
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
          '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" ' +
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">' +
          '<office:body><office:text><text:p>Quarterly figures</text:p></office:text></office:body></office:document-content>',
      ],
    ]);
    const out = join(dir, 'out.odt');
    execFileSync('zip', ['-X', '-q', '-0', out, 'mimetype'], { cwd: src });
    execFileSync('zip', ['-X', '-q', '-r', out, 'META-INF', 'content.xml'], { cwd: src });
    return readFileSync(out);
  });
}

/** A 7z archive made by `7z a`. */
export function make7z(files: FileList): Buffer {
  return inTmp((dir) => {
    const names = writeFiles(join(dir, 'in'), files);
    execFileSync('7z', ['a', '-bd', '-bso0', '-bsp0', join(dir, 'out.7z'), ...names], { cwd: join(dir, 'in') });
    return readFileSync(join(dir, 'out.7z'));
  });
}

/** A gzip-compressed tar made by `tar czf`. */
export function makeTarGz(files: FileList): Buffer {
  return inTmp((dir) => {
    const names = writeFiles(join(dir, 'in'), files);
    execFileSync('tar', ['czf', join(dir, 'out.tgz'), ...names], { cwd: join(dir, 'in') });
    return readFileSync(join(dir, 'out.tgz'));
  });
}

/**
 * A zip bomb: one entry of `mb` megabytes of zeros (a sparse file, so the disk is not used), deflated about 1000:1.
 * With `tar`, a tar.gz of the same instead.
 */
export function makeZeroBomb(mb: number, kind: 'zip' | 'tar.gz' = 'zip'): Buffer {
  return inTmp((dir) => {
    const src = join(dir, 'in');
    mkdirSync(src);
    execFileSync('truncate', ['-s', `${mb}M`, join(src, 'zeros.bin')]);
    const out = join(dir, kind === 'zip' ? 'bomb.zip' : 'bomb.tgz');
    if (kind === 'zip') execFileSync('zip', ['-X', '-q', out, 'zeros.bin'], { cwd: src });
    else execFileSync('tar', ['czf', out, 'zeros.bin'], { cwd: src });
    return readFileSync(out);
  });
}

export interface TestAttachment {
  filename: string;
  content: Buffer;
  /** Content-Transfer-Encoding; base64 by default. */
  encoding?: 'base64' | 'quoted-printable';
  contentType?: string;
}

/** A message with a text body and the attachments, composed by nodemailer's MailComposer (CRLF line ends). */
export function composeMessage(attachments: TestAttachment[], opts: { subject?: string; text?: string } = {}): Promise<Buffer> {
  return new MailComposer({
    from: 'Alice <alice@remote.test>',
    to: 'bob@corp.example',
    subject: opts.subject ?? 'Quarterly figures',
    text: opts.text ?? 'The figures are attached.',
    attachments: attachments.map((a) => ({
      filename: a.filename,
      content: a.content,
      contentType: a.contentType ?? 'application/octet-stream',
      contentTransferEncoding: a.encoding ?? 'base64',
    })),
  })
    .compile()
    .build();
}

/** A message with another message attached as message/rfc822. */
export function composeForward(inner: Buffer): Promise<Buffer> {
  return new MailComposer({
    from: 'carol@remote.test',
    to: 'bob@corp.example',
    subject: 'Fwd: Quarterly figures',
    text: 'See the attached message.',
    attachments: [{ filename: 'forwarded.eml', content: inner, contentType: 'message/rfc822' }],
  })
    .compile()
    .build();
}
