/**
 * A `node --test` reporter that writes only the run's closing counts (`# tests N`, `# pass N`, ...) to the file in
 * $POSTERN_TEST_SUMMARY_FILE, synchronously, as each arrives. test/harness/runner.ts adds it beside the spec
 * reporter to total the tiers. A TAP file destination is not enough: with --test-force-exit, Node 20's runner exits
 * once its reporters' source closes, before a file destination has flushed its last lines (the counts).
 *
 * Plain JavaScript: Node 20 loads reporters before the `--import tsx` hooks apply.
 */
import { appendFileSync } from 'node:fs';
import { Transform } from 'node:stream';

const COUNT = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) [\d.]+$/;

export default class SummaryReporter extends Transform {
  constructor() {
    super({ writableObjectMode: true });
    this.file = process.env.POSTERN_TEST_SUMMARY_FILE;
  }

  /** The root test reports its counts as diagnostics at nesting 0, once every file has ended. */
  _transform(event, _enc, cb) {
    const msg = event?.data?.message;
    if (this.file && event.type === 'test:diagnostic' && event.data.nesting === 0 && typeof msg === 'string' && COUNT.test(msg)) {
      appendFileSync(this.file, `# ${msg}\n`);
    }
    cb();
  }
}
