/**
 * Small helpers shared by the benchmarks: percentiles, a table printer, numbers from the environment and the CPU
 * time of a process. Benchmarks print; they never assert.
 */
import { readFileSync } from 'node:fs';

/** A reader of `POSTERN_BENCH_<prefix>_<name>` as a whole number, `dflt` when unset or not digits. */
export function envNumber(prefix: string): (name: string, dflt: number) => number {
  return (name, dflt) => {
    const v = process.env[`POSTERN_BENCH_${prefix}_${name}`];
    return v && /^\d+$/.test(v) ? Number(v) : dflt;
  };
}

const TICK = 100; // USER_HZ on Linux

/** utime + stime (+ cutime + cstime with `children`) of a process, in seconds; 0 when it is gone. */
export function cpuOf(pid: number, children: boolean, file = `/proc/${pid}/stat`): number {
  try {
    const stat = readFileSync(file, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the comm: state=0 … utime=11 stime=12 cutime=13 cstime=14
    const t = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return t / TICK;
  } catch {
    return 0;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export interface Stats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

/** Runs `fn` n times one after the other and returns latency stats in microseconds. */
export async function measure(n: number, fn: (i: number) => Promise<unknown>, warmup = Math.min(50, n)): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  return { n, p50: percentile(samples, 50), p99: percentile(samples, 99), mean: samples.reduce((a, b) => a + b, 0) / n };
}

export function us(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v.toFixed(1)} µs`;
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ')).join('\n');
}
