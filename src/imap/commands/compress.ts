/**
 * COMPRESS (RFC 4978): DEFLATE in both directions after the tagged OK. Like STARTTLS, the reader stopped at this
 * command (a client may not pipeline past it, §3), and the session switches its transport before reading again.
 */
import { bad, expectArgs, no, type ImapCommand } from '../command.js';
import { tokenText } from '../parser.js';

export const compress: ImapCommand = {
  names: ['COMPRESS'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    // RFC 4978 §3: a second COMPRESS is refused with this code (layering two DEFLATEs helps no one).
    if (session.compressed) throw no('Compression already active', 'COMPRESSIONACTIVE');
    const mechanism = cmd.args[0].type === 'atom' ? tokenText(cmd.args[0]) : undefined;
    if (mechanism?.toUpperCase() !== 'DEFLATE') throw bad('Unknown compression mechanism');
    session.startCompression(cmd.tag);
    return { sent: true };
  },
};
