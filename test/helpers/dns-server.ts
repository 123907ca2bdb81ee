/**
 * A loopback UDP DNS server for tests (port 0), answering from a table: MX, A, AAAA and TXT records, or an error
 * (NXDOMAIN, SERVFAIL, REFUSED, or no answer at all to make the client time out).
 *
 *   const dns = await startDnsServer({ 'example.test': { MX: [{ exchange: 'mx.example.test', priority: 10 }] },
 *                                      'mx.example.test': { A: ['127.0.0.1'] } });
 *   new MxResolver({ servers: [dns.address] });   // "127.0.0.1:PORT"
 *
 * A name missing from the table is NXDOMAIN; a name present without records of the asked type is NODATA (NOERROR,
 * no answers). Keys may be wildcards (`*.zen.test` matches any name below zen.test) and a `lookup` function can
 * answer arbitrary names (DNSBL tests). Every answer has TTL 0 so that the resolver's cache never hides a change.
 */
import dns2 from 'dns2';

const { Packet, UDPServer } = dns2;

export interface MxRecord {
  exchange: string;
  priority: number;
}

export interface DnsEntry {
  MX?: MxRecord[];
  A?: string[];
  AAAA?: string[];
  /**
   * One entry per TXT record. A string longer than 255 bytes is sent as several character-strings of 255 bytes
   * (as a zone file's `( "..." "..." )` would be); an array gives the character-strings explicitly.
   */
  TXT?: (string | string[])[];
  /** Answer with this error instead of records; 'timeout' sends no answer. */
  error?: 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED' | 'timeout';
}

export type DnsTable = Record<string, DnsEntry>;

export interface DnsQuery {
  name: string;
  type: string;
}

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, for Resolver.setServers / config.dns.servers. */
  readonly address: string;
  readonly port: number;
  /** Every question received, in order. */
  readonly queries: DnsQuery[];
  /** Replaces (or with undefined removes) the entry of a name. */
  set(name: string, entry: DnsEntry | undefined): void;
  /** Answers names not in the table (return undefined for NXDOMAIN). */
  lookup?: (name: string, type: string) => DnsEntry | undefined;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

function typeName(type: number): string {
  const entry = Object.entries(Packet.TYPE).find(([, v]) => v === type);
  return entry ? entry[0] : String(type);
}

function clean(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** RFC 1035 §3.3.14: a TXT record is one or more <character-string>s of at most 255 bytes. */
function characterStrings(data: string | string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const part of Array.isArray(data) ? data : [data]) {
    const buf = Buffer.from(part, 'utf8');
    if (buf.length === 0) out.push(buf);
    for (let i = 0; i < buf.length; i += 255) out.push(buf.subarray(i, i + 255));
  }
  return out;
}

export async function startDnsServer(table: DnsTable = {}): Promise<TestDnsServer> {
  const entries = new Map<string, DnsEntry>(Object.entries(table).map(([k, v]) => [clean(k), v]));
  const queries: DnsQuery[] = [];

  const find = (name: string, type: string): DnsEntry | undefined => {
    const exact = entries.get(name);
    if (exact) return exact;
    const labels = name.split('.');
    for (let i = 1; i < labels.length; i++) {
      const wild = entries.get(`*.${labels.slice(i).join('.')}`);
      if (wild) return wild;
    }
    return server.lookup?.(name, type);
  };

  const udp = new UDPServer({ type: 'udp4' });
  udp.on('request', (request, send) => {
    const response = Packet.createResponseFromRequest(request);
    // Echo no OPT record: a plain RFC 1035 answer is what every resolver understands.
    response.additionals = [];
    const question = request.questions[0];
    if (!question) return void send(response);
    const name = clean(question.name);
    const type = typeName(question.type);
    queries.push({ name, type });
    const entry = find(name, type);
    if (entry?.error === 'timeout') return;
    if (!entry || entry.error) {
      response.header.rcode = RCODE[entry?.error ?? 'NXDOMAIN'];
      return void send(response);
    }
    const base = { name: question.name, class: Packet.CLASS.IN, ttl: 0 };
    if (type === 'MX') {
      for (const mx of entry.MX ?? []) response.answers.push({ ...base, type: Packet.TYPE.MX, exchange: mx.exchange, priority: mx.priority } as never);
    } else if (type === 'A') {
      for (const address of entry.A ?? []) response.answers.push({ ...base, type: Packet.TYPE.A, address } as never);
    } else if (type === 'AAAA') {
      for (const address of entry.AAAA ?? []) response.answers.push({ ...base, type: Packet.TYPE.AAAA, address } as never);
    } else if (type === 'TXT') {
      for (const data of entry.TXT ?? []) response.answers.push({ ...base, type: Packet.TYPE.TXT, data: characterStrings(data) } as never);
    }
    void send(response);
  });
  udp.on('requestError', () => {
    /* a malformed packet: ignore it like a real server would */
  });
  await udp.listen(0, '127.0.0.1');
  const port = (udp.address() as { port: number }).port;

  const server: TestDnsServer = {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    set(name, entry) {
      if (entry) entries.set(clean(name), entry);
      else entries.delete(clean(name));
    },
    close: () => new Promise<void>((resolve) => udp.close(() => resolve())),
  };
  return server;
}
