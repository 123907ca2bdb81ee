/**
 * reject and ereject (RFC 5429 §2.1, §2.2): refuse the message with a reason. The deliverer decides between an
 * SMTP refusal and an MDN/DSN; both cancel the implicit keep. Conflicts with other actions are checked when the
 * action is added (interpreter.ts).
 */
import { strArg, type Defs, type Node } from '../registry.js';
import type { Runtime } from '../runtime.js';

function run(ereject: boolean) {
  return (node: Node, rt: Runtime) => {
    rt.addAction({ type: 'reject', reason: rt.expand(strArg(node.pos[0])!), ereject }, node);
    rt.cancelImplicitKeep();
  };
}

export const defs: Defs = {
  reject: { kind: 'command', ext: 'reject', pos: ['string'], run: run(false) },
  ereject: { kind: 'command', ext: 'ereject', pos: ['string'], run: run(true) },
};
