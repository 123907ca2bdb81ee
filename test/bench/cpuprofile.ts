/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. from POSTERN_BENCH_SMTP_PROF): self time by function and by
 * where the code lives (our src/ files, each npm package, node: internals, GC, idle).
 *
 *   node --import tsx test/bench/cpuprofile.ts FILE.cpuprofile [TOP]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function where(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(garbage collector)' || fn === '(program)') return fn;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  const s = /\/(src\/[^?]+)/.exec(url);
  if (s) return s[1];
  if (url.startsWith('node:') || url === '') return 'node (internals)';
  return url;
}

export function summarise(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = (p.endTime - p.startTime) / 1000;
  const fns = new Map<string, number>();
  const places = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const fn = n.callFrame.functionName || '(anonymous)';
    const place = where(n.callFrame.url, fn);
    const key = `${fn}  ${place}${n.callFrame.url.includes('/src/') ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us / 1000);
    places.set(place, (places.get(place) ?? 0) + us / 1000);
    if (fn !== '(idle)') busy += us / 1000;
  }
  const fmt = (m: Map<string, number>, n: number) =>
    [...m]
      .filter(([k]) => !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, ms]) => `  ${ms.toFixed(0).padStart(7)} ms  ${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${k}`)
      .join('\n');
  return [
    `${file}: ${total.toFixed(0)} ms profiled, ${busy.toFixed(0)} ms on the CPU (not idle)`,
    'by place (self time):',
    fmt(places, 20),
    `top ${top} functions (self time):`,
    fmt(fns, top),
  ].join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const [file, top] = process.argv.slice(2);
  console.log(summarise(file, top ? Number(top) : 25));
}
