/** Waiting for a condition with a deadline, the replacement for "sleep and hope" (STYLE.md). */

/**
 * Polls `check` every `intervalMs` until it returns something other than undefined/false, or throws after
 * `timeoutMs` with `what` in the message: the replacement for "sleep and hope".
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 10_000, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
